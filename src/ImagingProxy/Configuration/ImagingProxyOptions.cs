namespace ImagingProxy.Configuration;

/// <summary>The <c>ImagingProxy</c> configuration section: DICOM and MLLP listeners and routes, XDS clusters.</summary>
public sealed record ImagingProxyOptions
{
    public const string SectionName = "ImagingProxy";

    public DicomOptions Dicom { get; init; } = new();

    public MllpOptions Mllp { get; init; } = new();

    public XdsOptions Xds { get; init; } = new();

    public TelemetryOptions Telemetry { get; init; } = new();

    /// <summary>On SIGTERM: how long open associations and messages may take to finish before they are aborted (default 5 min).</summary>
    public TimeSpan? DrainTimeout { get; init; }

    /// <summary>
    /// Socket engines (epoll threads) of the process, read at start-up; absent: the runtime's own choice (one per core
    /// with inline scheduling). <c>DOTNET_SYSTEM_NET_SOCKETS_THREAD_COUNT</c> in the environment wins over it.
    /// </summary>
    public int? SocketEngines { get; init; }

    /// <summary>The largest <see cref="SocketEngines"/> accepted.</summary>
    public const int MaxSocketEngines = 256;
}
