using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Hosting;

/// <summary>
/// Logs (event 6, warning) and counts (<c>imagingproxy.tls.handshake_failures</c>) each failed TLS handshake on a DICOM or
/// MLLP listener. Kestrel's TLS middleware logs a failure only at Debug and returns without calling the rest of the
/// pipeline: <see cref="Around"/> goes before it, <see cref="MarkEstablished"/> after it.
/// </summary>
/// <remarks>
/// While the host drains, a connection whose handshake has not completed <see cref="ConnectionDrain.RequestWait"/> after
/// the drain began is aborted (<paramref name="drainRequestWaitOver"/>), as a plain connection that has sent nothing is:
/// otherwise it held the shutdown until the handshake timeout (reason <c>shutdown</c>).
/// </remarks>
internal sealed class TlsHandshakeWatch(string listener, string kind, TimeSpan handshakeTimeout, TlsMetrics metrics, TimeProvider time, ILogger logger, CancellationToken drainRequestWaitOver = default)
{
    private readonly string _protocol = ProxyListener.ProtocolLabel(kind);

    public ConnectionDelegate Around(ConnectionDelegate next) => async connection =>
    {
        var progress = new TlsHandshakeProgress();
        connection.Features.Set(progress);
        var started = time.GetTimestamp();
        var drained = false;
        using (drainRequestWaitOver.UnsafeRegister(_ =>
        {
            if (!progress.Established)
            {
                drained = true;
                connection.Abort(new ConnectionAbortedException("The host is draining and the TLS handshake has not completed."));
            }
        }, null))
        {
            await next(connection);
        }

        if (progress.Established)
        {
            return;
        }

        var (reason, detail) = drained ? ("shutdown", "no handshake before the drain closed the connections still setting up")
            : time.GetElapsedTime(started) >= handshakeTimeout ? ("timeout", $"no handshake within {handshakeTimeout.TotalSeconds:0.#} s")
            : progress.ClientCertificateRefused is { } refused ? ("handshake", refused)
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
