using System.Collections.Concurrent;
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
/// returned (looked at every <see cref="SweepPeriod"/>), logged (event 7, warning) and counted
/// (<c>imagingproxy.listener.close_timeouts</c>). It goes outside TLS, so a TLS session's last records are bounded too.
/// </summary>
internal sealed class RawConnectionCloseGuard
{
    /// <summary>How long a connection may take to close after its handler returned (the handlers' own bound on a last send).</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How often the connections being closed are looked at, while there are any: one timer for the listener, not one per
    /// connection (at hundreds of associations a second, a timer each kept the runtime's timer thread scanning thousands
    /// and woke a thread-pool worker per connection). A connection still open is aborted within this after its grace.
    /// </summary>
    public static readonly TimeSpan SweepPeriod = TimeSpan.FromSeconds(1);

    private readonly string _listener;
    private readonly string _protocol;
    private readonly ListenerMetrics _metrics;
    private readonly TimeProvider _time;
    private readonly ILogger _logger;
    private readonly ITimer _sweep;

    /// <summary>Connections whose handler returned, oldest first (the grace is the same for all, so deadlines are in order too).</summary>
    private readonly ConcurrentQueue<Watch> _watched = new();
    private int _sweepArmed;

    public RawConnectionCloseGuard(string listener, string kind, ListenerMetrics metrics, TimeProvider time, ILogger logger)
    {
        _listener = listener;
        _protocol = ProxyListener.ProtocolLabel(kind);
        _metrics = metrics;
        _time = time;
        _logger = logger;
        _sweep = time.CreateTimer(static s => ((RawConnectionCloseGuard)s!).Sweep(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
    }

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

    /// <summary>Connections being watched now (tests).</summary>
    internal int Watched => _watched.Count;

    /// <summary>
    /// Aborts <paramref name="connection"/> unless its socket is closed <see cref="Grace"/> from now. Kestrel's
    /// <c>ConnectionClosed</c> is no sign of that: it fires when the client's FIN ends the receive loop, while the sends
    /// to a client that half-closed (and stopped reading) may still be pending.
    /// </summary>
    private void Arm(ConnectionContext connection)
    {
        _watched.Enqueue(new Watch(connection, _time.GetTimestamp()));
        ArmSweep();
        Armed?.Invoke(connection);
    }

    private void ArmSweep()
    {
        if (Interlocked.CompareExchange(ref _sweepArmed, 1, 0) == 0)
        {
            _sweep.Change(SweepPeriod, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Drops the closed connections at the head of the queue and aborts those past their grace; again while any are left.</summary>
    private void Sweep()
    {
        try
        {
            var now = _time.GetTimestamp();
            while (_watched.TryPeek(out var watch))
            {
                var closed = watch.Closed;
                if (!closed && _time.GetElapsedTime(watch.Since, now) < Grace)
                {
                    break;
                }

                _watched.TryDequeue(out _);
                if (!closed)
                {
                    Abort(watch.Connection);
                }
            }
        }
        finally
        {
            // A connection queued while this ran either saw the flag still set (then it is seen here) or arms the next
            // sweep; the guard goes on whatever happened above.
            Interlocked.Exchange(ref _sweepArmed, 0);
            if (!_watched.IsEmpty)
            {
                ArmSweep();
            }
        }
    }

    private void Abort(ConnectionContext connection)
    {
        _metrics.CloseTimedOut(_listener, _protocol);
        HostingLog.CloseTimedOut(_logger, _listener, connection.ConnectionId, connection.RemoteEndPoint?.ToString() ?? "?", Grace.TotalSeconds);
        try
        {
            connection.Abort(new ConnectionAbortedException($"The client read nothing of the connection's last bytes for {Grace.TotalSeconds:0} s."));
        }
        catch (Exception ex) when (ex is ObjectDisposedException or InvalidOperationException or IOException)
        {
            // Closed meanwhile (or closing): nothing is left to abort.
        }
    }

    /// <summary>One connection's close being waited for, since its handler returned.</summary>
    private sealed class Watch(ConnectionContext connection, long since)
    {
        private readonly Socket? _socket = connection.Features.Get<IConnectionSocketFeature>()?.Socket;

        public ConnectionContext Connection { get; } = connection;

        public long Since { get; } = since;

        /// <summary>Kestrel disposes the socket once its last send is done (or failed); without the socket feature, its close signal.</summary>
        public bool Closed => _socket is { } socket ? socket.SafeHandle.IsClosed : Connection.ConnectionClosed.IsCancellationRequested;
    }
}
