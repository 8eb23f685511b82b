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
}
