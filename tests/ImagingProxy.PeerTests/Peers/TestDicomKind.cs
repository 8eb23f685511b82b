namespace ImagingProxy.PeerTests.Peers;

/// <summary>The kind of generated image, which sets SOP class, modality and image width.</summary>
public enum TestDicomKind
{
    /// <summary>CT Image Storage, 512 columns (a 512×512 slice is 0.5 MB).</summary>
    Ct,

    /// <summary>Digital Mammography X-Ray Image Storage – For Presentation, 2048 columns (tens of MB).</summary>
    Mg,
}
