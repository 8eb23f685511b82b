namespace ImagingProxy.PeerTests.Peers;

/// <summary>A generated DICOM Part-10 file and the identifiers inside it.</summary>
public sealed record TestDicomFile(
    string Path,
    string SopClassUid,
    string SopInstanceUid,
    string StudyInstanceUid,
    string SeriesInstanceUid,
    string PatientId,
    int PixelDataBytes)
{
    public long FileBytes => new FileInfo(Path).Length;
}
