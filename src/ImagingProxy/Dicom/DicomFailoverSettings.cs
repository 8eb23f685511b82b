namespace ImagingProxy.Dicom;

/// <summary>Failover before acceptance: how many destinations one association may try, and how long one TCP connect may take.</summary>
public readonly record struct DicomFailoverSettings(int MaxAttempts, TimeSpan ConnectTimeout)
{
    /// <summary>Upper bound applied to <c>ImagingProxy:Dicom:MaxAttempts</c>.</summary>
    public const int MaxAttemptsLimit = 32;
}
