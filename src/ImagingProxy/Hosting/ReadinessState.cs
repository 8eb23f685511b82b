using Microsoft.Extensions.Hosting;

namespace ImagingProxy.Hosting;

/// <summary>Whether the host should receive new traffic: configuration loaded and every listener bound, not draining.</summary>
public sealed class ReadinessState(IHostApplicationLifetime lifetime)
{
    private readonly CancellationToken _stopping = lifetime.ApplicationStopping;
    private volatile bool _started;

    public bool IsReady => _started && !IsDraining;

    /// <summary>True from the moment the host starts stopping (SIGTERM), before any stopping callback has run.</summary>
    public bool IsDraining => _stopping.IsCancellationRequested;

    public void MarkStarted() => _started = true;
}
