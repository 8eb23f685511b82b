namespace ImagingProxy.Hosting;

/// <summary>How far a connection's TLS handshake got (a connection feature set by <see cref="TlsHandshakeWatch"/>).</summary>
internal sealed class TlsHandshakeProgress
{
    /// <summary>The handshake callback ran: the client's ClientHello arrived.</summary>
    public bool ClientHelloReceived { get; set; }

    public bool Established { get; set; }

    /// <summary>Why ImagingProxy refused the client's certificate (ClientCertificateMode), when it did.</summary>
    public string? ClientCertificateRefused { get; set; }
}
