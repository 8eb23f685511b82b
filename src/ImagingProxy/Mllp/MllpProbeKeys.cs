using ImagingProxy.Configuration;

namespace ImagingProxy.Mllp;

/// <summary>Cluster metadata read by <see cref="MllpProber"/>.</summary>
public static class MllpProbeKeys
{
    /// <summary><see cref="MetadataKeys.MllpProbe"/>: <c>Connect</c> (default) or <c>Message</c>.</summary>
    public const string Kind = MetadataKeys.MllpProbe;

    /// <summary>The HL7 message a <c>Message</c> probe sends; segments separated by CR, LF or CRLF (sent as CR).</summary>
    public const string Message = MetadataKeys.MllpProbeMessage;

    /// <summary><c>true</c> to count an AE/CE answer as healthy too (the node is up, it only refused the probe's content).</summary>
    public const string AcceptError = MetadataKeys.MllpProbeAcceptError;
}
