namespace ImagingProxy.PeerTests.Peers;

/// <summary>What to generate; null identifiers get fresh 2.25 UIDs.</summary>
public sealed record TestDicomFileOptions
{
    public TestDicomKind Kind { get; init; } = TestDicomKind.Ct;

    /// <summary>Requested pixel data size; rounded up to whole rows of 16-bit pixels. Null: 0.5 MB (CT) or 26 MB (MG).</summary>
    public int? PixelDataBytes { get; init; }

    public string? StudyInstanceUid { get; init; }

    public string? SeriesInstanceUid { get; init; }

    public string? SopInstanceUid { get; init; }

    public string PatientId { get; init; } = "IPX-TEST-1";

    public string PatientName { get; init; } = "Test^Patient";

    public int InstanceNumber { get; init; } = 1;
}
