using System.Collections.Concurrent;
using System.Net.Sockets;
using ImagingProxy.Configuration;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

namespace ImagingProxy.Mllp;

/// <summary>
/// Pooled connections to HL7 receivers. A connection is rented by one inbound connection (which sends one message at a
/// time on it) and returned when that inbound connection ends; sockets always have <c>NoDelay</c> set (peers.md).
/// </summary>
internal sealed class MllpNodePool(SocketConnectionContextFactory factory) : IAsyncDisposable
{
    private const int MaxIdlePerDestination = 64;

    private readonly ConcurrentDictionary<string, ConcurrentQueue<MllpNodeConnection>> _idle = new(StringComparer.OrdinalIgnoreCase);
    private readonly ConcurrentDictionary<string, int> _rented = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>How many connections to <paramref name="address"/> are rented now (the load-balancing signal).</summary>
    public int RentedCount(string address) => _rented.TryGetValue(address, out var count) ? count : 0;

    /// <summary>An idle pooled connection to <paramref name="address"/>, or a new one.</summary>
    /// <exception cref="SocketException">The node refused or did not answer in time.</exception>
    public async ValueTask<MllpNodeConnection> RentAsync(string address, int maxFrameSize, TimeSpan connectTimeout, CancellationToken cancellationToken)
    {
        if (_idle.TryGetValue(address, out var idle) && idle.TryDequeue(out var pooled))
        {
            _rented.AddOrUpdate(address, 1, (_, n) => n + 1);
            return pooled;
        }

        if (!TcpAddress.TryParse(address, out var target))
        {
            throw new SocketException((int)SocketError.AddressNotAvailable);
        }

        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(connectTimeout);
            await socket.ConnectAsync(target.Host, target.Port, timeout.Token);
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new SocketException((int)SocketError.TimedOut);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        _rented.AddOrUpdate(address, 1, (_, n) => n + 1);
        return new MllpNodeConnection(address, factory.Create(socket), maxFrameSize);
    }

    /// <summary>Gives a healthy connection (no message in flight) back for reuse.</summary>
    public async ValueTask ReturnAsync(MllpNodeConnection connection)
    {
        Released(connection.Address);
        var idle = _idle.GetOrAdd(connection.Address, _ => new ConcurrentQueue<MllpNodeConnection>());
        if (idle.Count < MaxIdlePerDestination)
        {
            idle.Enqueue(connection);
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

    public async ValueTask DisposeAsync()
    {
        foreach (var queue in _idle.Values)
        {
            while (queue.TryDequeue(out var connection))
            {
                await connection.DisposeAsync();
            }
        }
    }

    private void Released(string address) => _rented.AddOrUpdate(address, 0, (_, n) => Math.Max(0, n - 1));
}
