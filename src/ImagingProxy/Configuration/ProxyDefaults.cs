namespace ImagingProxy.Configuration;

/// <summary>Every default value in one place.</summary>
public static class ProxyDefaults
{
    /// <summary>PS3.8 §9.1.2 ARTIM: how long a new DICOM connection may take to deliver its A-ASSOCIATE-RQ.</summary>
    public static readonly TimeSpan ArtimTimeout = TimeSpan.FromSeconds(30);

    /// <summary>An association idle this long in both directions is aborted.</summary>
    public static readonly TimeSpan AssociationIdleTimeout = TimeSpan.FromMinutes(15);

    /// <summary>Largest A-ASSOCIATE-RQ/AC PDU accepted from the wire.</summary>
    public const int MaxAssociatePduLength = 64 * 1024;

    /// <summary>How long connecting to one DICOM or MLLP node may take before failing over.</summary>
    public static readonly TimeSpan ConnectTimeout = TimeSpan.FromSeconds(5);

    /// <summary>Destinations tried for one association or message before giving up.</summary>
    public const int MaxAttempts = 3;

    /// <summary>Calling AE title of ImagingProxy's own C-ECHO probes.</summary>
    public const string ProbeCallingAeTitle = "IMAGINGPROXY";

    /// <summary>Largest MLLP frame accepted (reports with embedded PDFs are large).</summary>
    public const int MaxFrameSize = 16 * 1024 * 1024;

    /// <summary>How long a node has to acknowledge an HL7 message.</summary>
    public static readonly TimeSpan AckTimeout = TimeSpan.FromSeconds(30);

    /// <summary>YARP's own active health defaults (ActiveHealthCheckMonitorOptions).</summary>
    public static readonly TimeSpan ProbeInterval = TimeSpan.FromSeconds(15);

    public static readonly TimeSpan ProbeTimeout = TimeSpan.FromSeconds(10);

    public const int ConsecutiveFailuresThreshold = 2;

    public const int ConsecutiveSuccessesThreshold = 1;

    /// <summary>Passive health: how long a destination stays down after a transport failure.</summary>
    public static readonly TimeSpan ReactivationPeriod = TimeSpan.FromSeconds(60);

    /// <summary>Label cardinality caps for AE titles and HL7 message types.</summary>
    public const int MaxLabelValues = 50;

    /// <summary>How long a SIGTERM drain may last before what remains is aborted.</summary>
    public static readonly TimeSpan DrainTimeout = TimeSpan.FromMinutes(5);

    /// <summary>Environment variable naming the operator's configuration file (same as <c>--config</c>).</summary>
    public const string ConfigEnvironmentVariable = "IMAGINGPROXY_CONFIG";
}
