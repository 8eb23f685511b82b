using System.Net.Security;

namespace ImagingProxy.Dicom;

/// <summary>Options of <see cref="DicomEchoClient"/>; null means the default.</summary>
public sealed record DicomEchoOptions
{
    public static DicomEchoOptions Default { get; } = new();

    /// <summary>Whole-exchange timeout (connect included), reported as <see cref="EchoOutcome.Timeout"/>; null: only the caller's token.</summary>
    public TimeSpan? Timeout { get; init; }

    /// <summary>Clock for <see cref="Timeout"/>; null: <see cref="TimeProvider.System"/>.</summary>
    public TimeProvider? TimeProvider { get; init; }

    /// <summary>Maximum P-DATA-TF PDU-length we announce; null: <see cref="DicomDefaults.MaxPduLength"/>.</summary>
    public uint? MaxPduLength { get; init; }

    /// <summary>MessageID (0000,0110) of the C-ECHO-RQ; null: 1.</summary>
    public ushort? MessageId { get; init; }

    /// <summary>When set, the exchange runs over a TLS session opened with these options right after the TCP connect (DICOM TLS).</summary>
    public SslClientAuthenticationOptions? Tls { get; init; }

    /// <summary>With <see cref="Tls"/>: told the certificate the peer presented once the session is established.</summary>
    public Action<System.Security.Cryptography.X509Certificates.X509Certificate?>? TlsEstablished { get; init; }
}
