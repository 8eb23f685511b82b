namespace ImagingProxy.Dicom;

/// <summary>
/// A presentation context item. In an A-ASSOCIATE-RQ (item 0x20, PS3.8 §9.3.2.2) it carries the abstract syntax and the
/// proposed transfer syntaxes; in an -AC (item 0x21, §9.3.3.2) the result and the one accepted transfer syntax
/// (<see cref="AbstractSyntax"/> is then null: the AC does not repeat it).
/// </summary>
public sealed record PresentationContext(
    byte Id,
    string? AbstractSyntax,
    IReadOnlyList<string> TransferSyntaxes,
    PresentationContextResult Result);
