namespace ImagingProxy.Configuration;

/// <summary>A raw TCP listener (DICOM or MLLP): <c>ImagingProxy:Dicom:Listeners:NAME</c>.</summary>
public sealed record TcpListenerConfig
{
    /// <summary>IP address to bind; <c>0.0.0.0</c> (all IPv4) when null, <c>::</c> for all IPv6, <c>localhost</c> for loopback.</summary>
    public string? Address { get; init; }

    /// <summary>TCP port; 0 picks a free port (tests).</summary>
    public int Port { get; init; }

    /// <summary>Optional TLS (e.g. DICOM TLS on 2762): a PEM or PFX certificate.</summary>
    public CertificateConfig? Tls { get; init; }

    /// <summary>
    /// DICOM listeners only: when every route serving this listener goes to one cluster, connect to the node that will
    /// serve the association as soon as the client connects, while its A-ASSOCIATE-RQ is still on the way (as an L4
    /// proxy does), instead of after it. Saves the node connect on every association's set-up; the price is a TCP
    /// connection the node sees opened and closed without a PDU whenever the association is then not forwarded (no
    /// route for its AE titles, a client that never sends an RQ, a TCP health check of a load balancer in front).
    /// Default false.
    /// </summary>
    public bool? EarlyConnect { get; init; }

    /// <summary>
    /// DICOM listeners only: the most associations open on this listener at once, counted from the TCP accept to the
    /// close. An A-ASSOCIATE-RQ over the limit is answered with A-ASSOCIATE-RJ rejected-transient, service-provider
    /// (presentation), local-limit-exceeded, so the modality retries later (HAProxy's <c>maxconn</c> for a listener,
    /// answered in DICOM). Default: no limit.
    /// </summary>
    public int? MaxAssociations { get; init; }

    /// <summary>
    /// MLLP listeners only: the most connections open on this listener at once, counted from the TCP accept to the
    /// close. A connection over the limit holds no slot: it gets ImagingProxy's NAK (AR, or CR in enhanced mode; MSA-2
    /// set, ERR 207, "send it again later") for its first message, which is not forwarded, and is then closed; one that
    /// sends nothing is closed after the AckTimeout. Default: no limit.
    /// </summary>
    public int? MaxConnections { get; init; }
}
