using System.Net.Sockets;
using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Hosting;

/// <summary>
/// Bounds a DICOM or MLLP connection's close. Once its handler returned, Kestrel sends what is left in the connection's
/// output before it closes the socket, without a time limit: a client that stopped reading (a frozen workstation whose
/// kernel still acknowledges, with its receive window at zero) would hold that send, the socket and Kestrel's
/// connection for ever. <see cref="Around"/> aborts a connection not closed <see cref="Grace"/> after its handler
/// returned, logged (event 7, warning) and counted (<c>imagingproxy.listener.close_timeouts</c>). It goes outside TLS,
/// so a TLS session's last records are bounded too.
/// </summary>
internal sealed class RawConnectionCloseGuard(string listener, string kind, ListenerMetrics metrics, TimeProvider time, ILogger logger)
{
    /// <summary>How long a connection may take to close after its handler returned (the handlers' own bound on a last send).</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    private readonly string _protocol = ProxyListener.ProtocolLabel(kind);

    public ConnectionDelegate Around(ConnectionDelegate next) => async connection =>
    {
        try
        {
            await next(connection);
        }
        finally
        {
            Arm(connection);
        }
    };

    /// <summary>Raised once a returned handler's connection is being watched (tests).</summary>
    internal event Action<ConnectionContext>? Armed;

    /// <summary>
    /// Aborts <paramref name="connection"/> unless its socket is closed <see cref="Grace"/> from now. Kestrel's
    /// <c>ConnectionClosed</c> is no sign of that: it fires when the client's FIN ends the receive loop, while the sends
    /// to a client that half-closed (and stopped reading) may still be pending.
    /// </summary>
    private void Arm(ConnectionContext connection)
    {
        var watch = new Watch(this, connection);
        watch.Timer = time.CreateTimer(static s => ((Watch)s!).Expired(), watch, Grace, Timeout.InfiniteTimeSpan);
        Armed?.Invoke(connection);
    }

    private void Report(ConnectionContext connection)
    {
        metrics.CloseTimedOut(listener, _protocol);
        HostingLog.CloseTimedOut(logger, listener, connection.ConnectionId, connection.RemoteEndPoint?.ToString() ?? "?", Grace.TotalSeconds);
    }

    /// <summary>One connection's close being waited for.</summary>
    private sealed class Watch(RawConnectionCloseGuard guard, ConnectionContext connection)
    {
        private readonly Socket? _socket = connection.Features.Get<IConnectionSocketFeature>()?.Socket;

        public ITimer? Timer { get; set; }

        /// <summary>Kestrel disposes the socket once its last send is done (or failed); without the socket feature, its close signal.</summary>
        private bool Closed => _socket is { } socket ? socket.SafeHandle.IsClosed : connection.ConnectionClosed.IsCancellationRequested;

        public void Expired()
        {
            Timer?.Dispose();
            if (Closed)
            {
                return;
            }

            guard.Report(connection);
            try
            {
                connection.Abort(new ConnectionAbortedException($"The client read nothing of the connection's last bytes for {Grace.TotalSeconds:0} s."));
            }
            catch (ObjectDisposedException)
            {
                // Closed meanwhile.
            }
        }
    }
}
