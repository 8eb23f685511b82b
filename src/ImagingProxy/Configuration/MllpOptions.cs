namespace ImagingProxy.Configuration;

/// <summary><c>ImagingProxy:Mllp</c>: HL7 v2 listeners and the routes that pick a cluster per message.</summary>
public sealed record MllpOptions
{
    public Dictionary<string, TcpListenerConfig> Listeners { get; init; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Routes, tried by Order, then the more specific first, then by position or name (MllpRouteTable); the first match wins.</summary>
    public Dictionary<string, MllpRouteConfig> Routes { get; init; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Largest MLLP frame in bytes. Null means 16 MiB.</summary>
    public int? MaxFrameSize { get; init; }

    /// <summary>How long a node has to acknowledge a message. Null means 30 s.</summary>
    public TimeSpan? AckTimeout { get; init; }

    /// <summary>Nodes tried for one message before ImagingProxy answers AR/CR itself (1-10, default 3).</summary>
    public int? MaxAttempts { get; init; }

    /// <summary>How long connecting to one node may take (default 5 s).</summary>
    public TimeSpan? ConnectTimeout { get; init; }

    /// <summary>Optional budget for one message across all attempts; a connect gets at most min(ConnectTimeout, time left), an ACK wait min(AckTimeout, time left).</summary>
    public TimeSpan? DeliveryTimeout { get; init; }

    /// <summary>Optional: close an inbound connection idle this long (off by default: HL7 senders hold connections for hours).</summary>
    public TimeSpan? IdleTimeout { get; init; }

    /// <summary>Close pooled node connections idle this long (default 60 s).</summary>
    public TimeSpan? PoolIdleTimeout { get; init; }
}
