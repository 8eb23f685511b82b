namespace ImagingProxy.Dicom;

/// <summary>Why one direction of the relay stopped.</summary>
public enum RelayEnd
{
    /// <summary>The side it reads from closed, reset or failed.</summary>
    SourceClosed,

    /// <summary>The side it writes to closed, reset or failed.</summary>
    TargetClosed,

    /// <summary>The bytes it read were not a PDU stream.</summary>
    Malformed,

    /// <summary>Stopped by the proxy: the other direction ended first, idle timeout or shutdown.</summary>
    Stopped,
}
