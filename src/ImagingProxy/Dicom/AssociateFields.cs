namespace ImagingProxy.Dicom;

/// <summary>What <see cref="AssociateParser"/> extracts; shared by the RQ and AC models.</summary>
internal readonly record struct AssociateFields(
    ushort ProtocolVersion,
    string CalledAeTitle,
    string CallingAeTitle,
    string ApplicationContextName,
    IReadOnlyList<PresentationContext> PresentationContexts,
    UserInformation UserInformation);
