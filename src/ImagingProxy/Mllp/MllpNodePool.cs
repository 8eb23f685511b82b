using System.Collections.Concurrent;
using System.Net.Security;
using System.Net.Sockets;
using ImagingProxy.Configuration;

namespace ImagingProxy.Mllp;

/// <summary>
/// Pooled connections to HL7 receivers. A connection is rented by one inbound connection (which sends one message at a
/// time on it) and returned when that inbound connection ends; sockets always have <c>NoDelay</c> set (peers.md).
/// </summary>
/// <remarks>
/// A returned connection stays idle in the pool for at most the idle timeout given on return
/// (<see cref="MllpRouteTable.PoolIdleTimeout"/>, 60 s by default): a sweep every <see cref="SweepInterval"/> closes
/// older ones, so receivers do not hold sockets for senders long gone, and a rent never picks an expired one.
/// </remarks>
internal sealed class MllpNodePool(TimeProvider time) : IAsyncDisposable
{
    /// <summary>How often idle connections are checked for expiry.</summary>
    public static readonly TimeSpan SweepInterval = TimeSpan.FromSeconds(5);

    private const int MaxIdlePerDestination = 64;

    private readonly ConcurrentDictionary<string, ConcurrentQueue<(MllpNodeConnection Connection, long Expires)>> _idle = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, int> _rented = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>Per address: connections being opened for a renter, and places a pick reserved (<see cref="TryReserve"/>).</summary>
    private readonly ConcurrentDictionary<string, int> _opening = new(StringComparer.OrdinalIgnoreCase);
    private readonly Lock _reservations = new();
    private readonly Lock _sweepLock = new();
    private ITimer? _sweep;
    private bool _disposed;

    /// <summary>How many connections to <paramref name="address"/> are rented now (the load-balancing signal).</summary>
    public int RentedCount(string address) => _rented.TryGetValue(address, out var count) ? count : 0;

    /// <summary>
    /// Connections to <paramref name="address"/> rented now or being opened for a renter: what destination
    /// <c>MaxConcurrent</c> and the least-loaded pick count, so a burst of first messages does not all see the count
    /// from before their connects.
    /// </summary>
    public int LoadOf(string address) => RentedCount(address) + (_opening.TryGetValue(address, out var count) ? count : 0);

    /// <summary>
    /// Reserves a place at <paramref name="address"/> when fewer than <paramref name="max"/> connections are rented,
    /// being opened or reserved (destination <c>MaxConcurrent</c>): picks made at the same moment cannot both take the
    /// last place. The next <see cref="RentAsync(string, int, TimeSpan, SslClientAuthenticationOptions?, string?, CancellationToken, bool)"/>
    /// or <see cref="ConnectAsync"/> with <c>reserved</c> takes the reservation over, whatever its outcome; else <see cref="Unreserve"/>.
    /// </summary>
    public bool TryReserve(string address, int max)
    {
        lock (_reservations)
        {
            if (LoadOf(address) >= max)
            {
                return false;
            }

            _opening.AddOrUpdate(address, 1, static (_, n) => n + 1);
            return true;
        }
    }

    /// <summary>Gives back a reservation no rent took over.</summary>
    public void Unreserve(string address) => _opening.AddOrUpdate(address, 0, static (_, n) => Math.Max(0, n - 1));

    /// <summary>How many connections to <paramref name="address"/> wait in the pool now.</summary>
    public int IdleCount(string address) => _idle.TryGetValue(address, out var idle) ? idle.Count : 0;

    /// <summary>An idle pooled connection to <paramref name="address"/>, or a new one.</summary>
    /// <exception cref="SocketException">The node refused or did not answer in time.</exception>
    public ValueTask<MllpNodeConnection> RentAsync(string address, int maxFrameSize, TimeSpan connectTimeout, CancellationToken cancellationToken)
        => RentAsync(address, maxFrameSize, connectTimeout, tls: null, tlsSettings: null, cancellationToken);

    /// <summary>
    /// An idle pooled connection to <paramref name="address"/> opened with <paramref name="tlsSettings"/>, or a new one; a
    /// new connection to a <c>tls://</c> address opens its TLS session with <paramref name="tls"/> (within
    /// <paramref name="connectTimeout"/> too). An idle connection opened with other TLS settings (another cluster's for the
    /// same address, or from before a reload) stays in the pool until it expires.
    /// </summary>
    /// <exception cref="SocketException">The node refused or did not answer in time.</exception>
    /// <exception cref="System.Security.Authentication.AuthenticationException">The node's certificate was not accepted.</exception>
    /// <exception cref="IOException">The node closed the connection during the TLS handshake.</exception>
    public async ValueTask<MllpNodeConnection> RentAsync(string address, int maxFrameSize, TimeSpan connectTimeout, SslClientAuthenticationOptions? tls, string? tlsSettings, CancellationToken cancellationToken, bool reserved = false)
    {
        var reservation = reserved;
        try
        {
            if (_idle.TryGetValue(address, out var idle))
            {
                var now = time.GetTimestamp();
                for (var left = idle.Count; left > 0 && idle.TryDequeue(out var pooled); left--)
                {
                    if (pooled.Expires <= now)
                    {
                        await pooled.Connection.DisposeAsync();
                    }
                    else if (pooled.Connection.TlsSettings == tlsSettings)
                    {
                        _rented.AddOrUpdate(address, 1, static (_, n) => n + 1);
                        return pooled.Connection;
                    }
                    else
                    {
                        // Opened with other TLS settings (another cluster's for the same address, or from before a reload):
                        // kept for its own renters until it expires.
                        idle.Enqueue(pooled);
                    }
                }
            }

            reservation = false; // the connect takes it over
            return await ConnectAsync(address, maxFrameSize, connectTimeout, tls, tlsSettings, cancellationToken, reserved);
        }
        finally
        {
            if (reservation)
            {
                Unreserve(address); // after the rented count took the pooled connection, or on a failure
            }
        }
    }

    /// <summary>A new connection to <paramref name="address"/>, never an idle pooled one; rented (returned or discarded) like one from <c>RentAsync</c>.</summary>
    /// <exception cref="SocketException">The node refused or did not answer in time.</exception>
    /// <exception cref="System.Security.Authentication.AuthenticationException">The node's certificate was not accepted.</exception>
    /// <exception cref="IOException">The node closed the connection during the TLS handshake.</exception>
    public async ValueTask<MllpNodeConnection> ConnectAsync(string address, int maxFrameSize, TimeSpan connectTimeout, SslClientAuthenticationOptions? tls, string? tlsSettings, CancellationToken cancellationToken, bool reserved = false)
    {
        if (!reserved)
        {
            _opening.AddOrUpdate(address, 1, static (_, n) => n + 1);
        }

        try
        {
            if (!TcpAddress.TryParse(address, out var target))
            {
                throw new SocketException((int)SocketError.AddressNotAvailable);
            }

            var connection = await MllpNodeConnection.ConnectAsync(address, target, target.Tls ? tls : null, maxFrameSize, connectTimeout, cancellationToken);
            connection.TlsSettings = connection.IsTls ? tlsSettings : null;
            _rented.AddOrUpdate(address, 1, static (_, n) => n + 1);
            return connection;
        }
        finally
        {
            // After the rented count took the connection: the load never dips in between.
            Unreserve(address);
        }
    }

    /// <summary>Gives a healthy connection (no message in flight) back for reuse during <paramref name="idleTimeout"/>.</summary>
    public async ValueTask ReturnAsync(MllpNodeConnection connection, TimeSpan idleTimeout)
    {
        Released(connection.Address);
        var idle = _idle.GetOrAdd(connection.Address, static _ => new ConcurrentQueue<(MllpNodeConnection, long)>());
        if (!_disposed && idle.Count < MaxIdlePerDestination)
        {
            var expires = time.GetTimestamp() + (long)(idleTimeout.TotalSeconds * time.TimestampFrequency);
            idle.Enqueue((connection, expires));
            EnsureSweep();
            return;
        }

        await connection.DisposeAsync();
    }

    /// <summary>Closes a connection that failed or may hold a late acknowledgement.</summary>
    public ValueTask DiscardAsync(MllpNodeConnection connection)
    {
        Released(connection.Address);
        return connection.DisposeAsync();
    }

    /// <summary>Closes pooled connections idle past their timeout (the timer's work; public for tests).</summary>
    public async Task SweepAsync()
    {
        var now = time.GetTimestamp();
        foreach (var queue in _idle.Values)
        {
            // Entries are queued in return order, so expiry grows along the queue; the same timeout is assumed.
            var count = queue.Count;
            for (var i = 0; i < count && queue.TryPeek(out var head) && head.Expires <= now; i++)
            {
                if (queue.TryDequeue(out var expired))
                {
                    if (expired.Expires <= now)
                    {
                        await expired.Connection.DisposeAsync();
                    }
                    else
                    {
                        queue.Enqueue(expired); // a rent took the peeked one meanwhile
                    }
                }
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _disposed = true;
        lock (_sweepLock)
        {
            _sweep?.Dispose();
            _sweep = null;
        }

        foreach (var queue in _idle.Values)
        {
            while (queue.TryDequeue(out var pooled))
            {
                await pooled.Connection.DisposeAsync();
            }
        }
    }

    private void EnsureSweep()
    {
        if (_sweep is not null)
        {
            return;
        }

        lock (_sweepLock)
        {
            if (_sweep is null && !_disposed)
            {
                _sweep = time.CreateTimer(static s => _ = ((MllpNodePool)s!).SweepAsync(), this, SweepInterval, SweepInterval);
            }
        }
    }

    private void Released(string address) => _rented.AddOrUpdate(address, 0, static (_, n) => Math.Max(0, n - 1));
}
