namespace ImagingProxy.Configuration;

/// <summary><c>ImagingProxy:Dicom</c>: listeners that accept associations and the routes that pick a cluster per association.</summary>
public sealed record DicomOptions
{
    public Dictionary<string, TcpListenerConfig> Listeners { get; init; } = new(StringComparer.OrdinalIgnoreCase);

    public Dictionary<string, DicomRouteConfig> Routes { get; init; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>PS3.8 §9.1.2: time allowed for the A-ASSOCIATE-RQ after the TCP accept. Null means the default (30 s).</summary>
    public TimeSpan? ArtimTimeout { get; init; }

    /// <summary>An association with no traffic either way for this long is aborted. Null means 15 min.</summary>
    public TimeSpan? IdleTimeout { get; init; }

    /// <summary>Largest association PDU (RQ/AC) accepted, in bytes. Null means 64 KiB.</summary>
    public int? MaxAssociatePduLength { get; init; }

    /// <summary>Destinations tried for one association before the client gets a transient reject (1-32, default 3).</summary>
    public int? MaxAttempts { get; init; }

    /// <summary>How long connecting to one node may take before failing over (default 5 s).</summary>
    public TimeSpan? ConnectTimeout { get; init; }

    /// <summary>Calling AE title used by ImagingProxy's C-ECHO health probes.</summary>
    public string? ProbeCallingAeTitle { get; init; }
}
