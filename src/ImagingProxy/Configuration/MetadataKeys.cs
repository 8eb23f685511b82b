namespace ImagingProxy.Configuration;

/// <summary>Metadata keys ImagingProxy reads from YARP route, cluster and destination metadata.</summary>
public static class MetadataKeys
{
    /// <summary>Cluster metadata: <c>Http</c> (default), <c>Dicom</c> or <c>Mllp</c>.</summary>
    public const string Protocol = "Protocol";

    /// <summary>Destination metadata: the node's own AE title (probe target, optional Called AE rewrite).</summary>
    public const string AeTitle = "AeTitle";

    /// <summary>Route metadata: the Kestrel endpoint whose requests the route serves (default <c>Viewers</c>).</summary>
    public const string Listener = "Listener";

    /// <summary>Cluster metadata: consecutive probe failures before a destination turns unhealthy (YARP's key).</summary>
    public const string ConsecutiveFailuresThreshold = "ConsecutiveFailuresHealthPolicy.Threshold";

    /// <summary>Cluster metadata: consecutive probe successes before an unhealthy destination turns healthy again.</summary>
    public const string ConsecutiveSuccessesThreshold = "ConsecutiveSuccessesHealthPolicy.Threshold";

    /// <summary>Cluster metadata: headers sent with HTTP probes, <c>Name: value</c> pairs separated by <c>;</c> or newlines.</summary>
    public const string ProbeHeaders = "HealthCheck.Headers";

    /// <summary>Cluster metadata (MLLP): <c>Connect</c> (default) or <c>Message</c>.</summary>
    public const string MllpProbe = "HealthCheck.Mllp.Probe";

    /// <summary>Cluster metadata (MLLP, <c>Message</c> probe): the probe message, segments separated by CR, LF or CRLF.</summary>
    public const string MllpProbeMessage = "HealthCheck.Mllp.ProbeMessage";

    /// <summary>Cluster metadata (MLLP, <c>Message</c> probe): <c>true</c> to count an AE/CE answer as healthy.</summary>
    public const string MllpProbeAcceptError = "HealthCheck.Mllp.ProbeAcceptError";

    /// <summary>
    /// Cluster metadata (MLLP): <c>true</c> to send a message a node rejected (MSA-1 <c>AR</c> or <c>CR</c>: not processed,
    /// not stored) to another node while one and an attempt are left; the last node's answer is relayed as it is.
    /// </summary>
    public const string MllpRetryOnReject = "Mllp.RetryOnReject";

    /// <summary>
    /// Cluster metadata (HTTP): attempts in all for a GET, HEAD or OPTIONS request whose destination failed before
    /// answering (1 turns retries off; default 3, at most 10).
    /// </summary>
    public const string RetryMaxAttempts = "Retry.MaxAttempts";

    /// <summary>
    /// Cluster metadata (HTTP): which failures a GET/HEAD/OPTIONS is retried after: <c>Connect</c> (default: the request
    /// never reached the server) or <c>BeforeResponse</c> (also a reset or no response headers in time).
    /// </summary>
    public const string RetryOn = "Retry.On";

    /// <summary>
    /// Cluster metadata (HTTP): answers after which a GET/HEAD/OPTIONS is retried on another destination, a list of codes
    /// (429, 500-599) and <c>5xx</c> (<see cref="Health.FailureStatusCodes"/>); none by default.
    /// </summary>
    public const string RetryStatusCodes = "Retry.StatusCodes";

    /// <summary>
    /// Cluster metadata (HTTP): when uploads are sent with <c>Expect: 100-continue</c>: <c>Never</c> (default),
    /// <c>Large</c> (bodies of 1 MiB or more, or of unknown length) or <c>Always</c> (<see cref="Forwarding.ExpectContinue"/>).
    /// </summary>
    public const string ExpectContinue = "ExpectContinue";

    /// <summary>
    /// Cluster metadata (HTTP): how long an upload sent with <c>Expect: 100-continue</c> waits for the server's answer
    /// before its body goes anyway (a time span; default .NET's 1 s; <see cref="Forwarding.ProxyHttpClientFactory"/>).
    /// </summary>
    public const string ExpectContinueTimeout = "ExpectContinueTimeout";

    /// <summary>
    /// Cluster metadata (HTTP): answers passive health counts as failures besides transport failures, a list of codes
    /// (429, 500-599) and <c>5xx</c> (<see cref="Health.FailureStatusCodes"/>); none by default.
    /// </summary>
    public const string PassiveFailureStatusCodes = "TransportFailureRateHealthPolicy.FailureStatusCodes";

    /// <summary>Cluster metadata (DICOM): <c>true</c> to send each node its own <see cref="AeTitle"/> as Called AE title.</summary>
    public const string RewriteCalledAeTitle = "RewriteCalledAeTitle";

    /// <summary>
    /// Destination metadata: <c>true</c> drains the destination (maintenance): it takes no new association, message or
    /// request, of any protocol, while what it serves now runs to its end; probes go on, so /status shows when it is up.
    /// </summary>
    public const string Drain = "Drain";

    /// <summary>
    /// Destination metadata, every protocol: <c>true</c> makes the destination a backup (a disaster-recovery site), used
    /// only while none of the cluster's other destinations is available, as HAProxy's and NGINX's <c>backup</c>.
    /// </summary>
    public const string Backup = "Backup";

    /// <summary>
    /// Destination metadata: the destination's relative share of its cluster's associations, messages or requests, every
    /// protocol (positive whole number, default 1; <see cref="Balancing.DestinationWeights"/>).
    /// </summary>
    public const string Weight = "Weight";

    /// <summary>
    /// Cluster metadata, every protocol: how long a destination back from Unhealthy takes to reach its whole share, from a
    /// tenth of it (a time span; none by default; <see cref="Balancing.DestinationWeights"/>).
    /// </summary>
    public const string SlowStart = "SlowStart";

    /// <summary>
    /// Destination metadata, every protocol: the most the destination is given at once (open associations, HL7 node
    /// connections, HTTP requests in flight; positive whole number; none by default; <see cref="Balancing.DestinationLimits"/>).
    /// </summary>
    public const string MaxConcurrent = "MaxConcurrent";

    /// <summary>
    /// Cluster metadata, DICOM and HTTP clusters: how long an association or request may wait for a place when every
    /// available destination is at its <see cref="MaxConcurrent"/> (a time span; none by default: refused at once), as
    /// HAProxy's <c>timeout queue</c>.
    /// </summary>
    public const string QueueTimeout = "QueueTimeout";

    /// <summary>
    /// Cluster metadata (DICOM and MLLP, <c>tls://</c> destinations): PEM file of the CA certificate(s) the nodes' certificates must
    /// chain to, instead of the system's trust store (a hospital's own CA).
    /// </summary>
    public const string TlsCaPath = "Tls.CaPath";

    /// <summary>Cluster metadata (DICOM and MLLP, <c>tls://</c> destinations): ImagingProxy's client certificate (PEM), for nodes that require one.</summary>
    public const string TlsClientCertificatePath = "Tls.ClientCertificatePath";

    /// <summary>Cluster metadata (DICOM and MLLP, <c>tls://</c> destinations): the private key (PEM) of <see cref="TlsClientCertificatePath"/>.</summary>
    public const string TlsClientKeyPath = "Tls.ClientKeyPath";

    /// <summary>Destination metadata (<c>tls://</c> destinations): the name the node's certificate must carry (and SNI); default: the address's host.</summary>
    public const string TlsServerName = "Tls.ServerName";

    /// <summary>Internal: set by ImagingProxy's config filter when the user enabled active health checks.</summary>
    internal const string ActiveHealthCheckEnabled = "ImagingProxy.ActiveHealthCheck.Enabled";

    /// <summary>Internal: marks the synthetic XDS route.</summary>
    internal const string XdsRoute = "ImagingProxy.Xds";

    /// <summary>Internal: on the synthetic XDS route, the registry cluster id (ITI-18, ITI-42).</summary>
    internal const string XdsRegistryCluster = "ImagingProxy.Xds.RegistryCluster";

    /// <summary>Internal: on the synthetic XDS route, the repository cluster id (ITI-41, ITI-43).</summary>
    internal const string XdsRepositoryCluster = "ImagingProxy.Xds.RepositoryCluster";
}
