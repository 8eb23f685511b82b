namespace ImagingProxy.PeerTests.Peers;

public sealed record OrthancOptions
{
    public string AeTitle { get; init; } = "ORTHANC";

    /// <summary>Load the DICOMweb plugin, served at <c>/dicom-web/</c>.</summary>
    public bool DicomWeb { get; init; } = true;

    /// <summary><c>DicomCheckCalledAet</c>: true makes Orthanc refuse other called AE titles.</summary>
    public bool CheckCalledAeTitle { get; init; }

    /// <summary>Known modalities (<c>DicomModalities</c>), e.g. C-MOVE destinations.</summary>
    public IReadOnlyList<DicomNode> Modalities { get; init; } = [];

    /// <summary>Extra or overriding configuration keys, serialized as JSON.</summary>
    public IReadOnlyDictionary<string, object?> Settings { get; init; } = new Dictionary<string, object?>();

    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(30);
}
