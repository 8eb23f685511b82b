namespace ImagingProxy.Configuration;

/// <summary>The <c>ImagingProxy</c> configuration section: DICOM and MLLP listeners and routes, XDS clusters.</summary>
public sealed record ImagingProxyOptions
{
    public const string SectionName = "ImagingProxy";

    public DicomOptions Dicom { get; init; } = new();

    public MllpOptions Mllp { get; init; } = new();

    public XdsOptions Xds { get; init; } = new();
}
