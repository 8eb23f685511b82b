namespace ImagingProxy.Configuration;

/// <summary><c>ImagingProxy:Mllp</c>: HL7 v2 listeners and the routes that pick a cluster per message.</summary>
public sealed record MllpOptions
{
    public Dictionary<string, TcpListenerConfig> Listeners { get; init; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Routes, tried in configuration order; the first match wins.</summary>
    public Dictionary<string, MllpRouteConfig> Routes { get; init; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Largest MLLP frame in bytes. Null means 16 MiB.</summary>
    public int? MaxFrameSize { get; init; }

    /// <summary>How long a node has to acknowledge a message. Null means 30 s.</summary>
    public TimeSpan? AckTimeout { get; init; }
}
