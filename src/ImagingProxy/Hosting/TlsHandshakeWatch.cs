using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Hosting;

/// <summary>
/// Logs (event 6, warning) and counts (<c>imagingproxy.tls.handshake_failures</c>) each failed TLS handshake on a DICOM or
/// MLLP listener. Kestrel's TLS middleware logs a failure only at Debug and returns without calling the rest of the
/// pipeline: <see cref="Around"/> goes before it, <see cref="MarkEstablished"/> after it.
/// </summary>
internal sealed class TlsHandshakeWatch(string listener, string kind, TimeSpan handshakeTimeout, TlsMetrics metrics, TimeProvider time, ILogger logger)
{
    private readonly string _protocol = ProxyListener.ProtocolLabel(kind);

    public ConnectionDelegate Around(ConnectionDelegate next) => async connection =>
    {
        var progress = new TlsHandshakeProgress();
        connection.Features.Set(progress);
        var started = time.GetTimestamp();
        await next(connection);
        if (progress.Established)
        {
            return;
        }

        var (reason, detail) = time.GetElapsedTime(started) >= handshakeTimeout ? ("timeout", $"no handshake within {handshakeTimeout.TotalSeconds:0.#} s")
            : progress.ClientHelloReceived ? ("handshake", "failed after the ClientHello (no common protocol or cipher suite, or the client refused the certificate)")
            : ("no_client_hello", "no TLS ClientHello: the client closed, or spoke another protocol (plain DICOM or HL7 to a TLS port?)");
        metrics.HandshakeFailed(listener, _protocol, reason);
        HostingLog.TlsHandshakeFailed(logger, listener, kind, connection.RemoteEndPoint?.ToString() ?? "?", connection.ConnectionId, detail);
    };

    public static ConnectionDelegate MarkEstablished(ConnectionDelegate next) => connection =>
    {
        if (connection.Features.Get<TlsHandshakeProgress>() is { } progress)
        {
            progress.Established = true;
        }

        return next(connection);
    };
}
