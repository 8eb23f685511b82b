namespace ImagingProxy.Hosting;

/// <summary>Whether the host should receive new traffic: configuration loaded and every listener bound, not draining.</summary>
public sealed class ReadinessState
{
    private volatile bool _started;
    private volatile bool _draining;

    public bool IsReady => _started && !_draining;

    public bool IsDraining => _draining;

    public void MarkStarted() => _started = true;

    public void MarkDraining() => _draining = true;
}
