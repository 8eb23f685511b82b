using System.Buffers;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Mllp;

/// <summary>
/// Per inbound connection state: the node connection it sticks to in each cluster (so its messages arrive in order at
/// one receiver while that receiver is available), and buffers and timers reused message after message.
/// </summary>
internal sealed class MllpSession : IAsyncDisposable
{
    private readonly Dictionary<string, (string DestinationId, MllpNodeConnection Connection)> _sticky = new(StringComparer.OrdinalIgnoreCase);
    private readonly MllpNodePool _pool;
    private readonly TimeProvider _time;
    private readonly CancellationTokenRegistration _abortRegistration;
    private CancellationTokenSource _attemptTimeout;

    public MllpSession(string connectionId, string listener, MllpNodePool pool, TimeProvider time, CancellationToken aborted)
    {
        ConnectionId = connectionId;
        Listener = listener;
        _pool = pool;
        _time = time;
        Aborted = aborted;
        _attemptTimeout = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _abortRegistration = aborted.UnsafeRegister(static s => ((MllpSession)s!).CancelAttempt(), this);
    }

    public string ConnectionId { get; }

    public string Listener { get; }

    /// <summary>Fires at the drain deadline (<see cref="Hosting.ConnectionDrain.Deadline"/>): stop waiting for nodes.</summary>
    public CancellationToken Aborted { get; }

    /// <summary>The last acknowledgement received from a node (payload, without framing).</summary>
    public ArrayBufferWriter<byte> Ack { get; } = new(512);

    public Hl7AckReader AckReader { get; } = new();

    /// <summary>The header of the message in hand: set when its frame is read, valid until the next frame.</summary>
    public Hl7Header Header { get; set; }

    /// <summary>The attempt in flight (MllpForwarder), one object reused message after message.</summary>
    public MllpAttempt Attempt { get; } = new();

    // The message being delivered (valid from MllpForwarder.StartFirstAttempt to FinishAsync).
    public ClusterState? Cluster { get; set; }

    public ReadOnlySequence<byte> Message { get; set; }

    public MllpRouteTable Settings { get; set; } = MllpRouteTable.Empty;

    /// <summary>The listener's MaxConnections when this connection is over it (its first message gets a NAK), else null.</summary>
    public int? OverLimit { get; set; }

    public List<DestinationState> Failed { get; } = [];

    /// <summary>
    /// The nodes whose stale pooled connection already got its free retry on a new connection during this message: one
    /// per node, so a node reached after another one's free retry still gets its own.
    /// </summary>
    public List<DestinationState> FreshRetried { get; } = [];

    /// <summary>
    /// The address whose pool place the last pick reserved (destination <c>MaxConcurrent</c>,
    /// <see cref="MllpNodePool.TryReserve"/>), until the attempt's rent takes it over or gives it back; null: none.
    /// </summary>
    public string? Reservation { get; set; }

    /// <summary>The attempt about to run replaces a stale pooled connection (not a retry to count).</summary>
    public bool FreshRetryUsedNow { get; set; }

    /// <summary>The node whose stale pooled connection failed: the attempt about to run goes to it again, on a new connection.</summary>
    public DestinationState? FreshRetryTo { get; set; }

    public int Attempts { get; set; }

    /// <summary>
    /// A node's refusal dropped for another attempt (<c>Mllp.RetryOnReject</c>) while <see cref="Ack"/> still holds it: no
    /// attempt has sent the message since. The answer when no other node gets the message after all.
    /// </summary>
    public MllpAttemptResult? Refusal { get; set; }

    public long DeliveryStarted { get; set; }

    /// <summary>A per-attempt timeout (ACK wait), armed for <paramref name="timeout"/>; also cancelled by <see cref="Aborted"/>.</summary>
    public CancellationToken StartAttemptTimeout(TimeSpan timeout)
    {
        if (!_attemptTimeout.TryReset())
        {
            _attemptTimeout.Dispose();
            _attemptTimeout = new CancellationTokenSource(Timeout.InfiniteTimeSpan, _time);
            if (Aborted.IsCancellationRequested)
            {
                _attemptTimeout.Cancel();
            }
        }

        _attemptTimeout.CancelAfter(timeout);
        return _attemptTimeout.Token;
    }

    /// <summary>Disarms the timer of <see cref="StartAttemptTimeout"/>.</summary>
    public void StopAttemptTimeout() => _attemptTimeout.CancelAfter(Timeout.InfiniteTimeSpan);

    public bool TryGetSticky(string clusterId, out string destinationId, out MllpNodeConnection connection)
    {
        if (_sticky.TryGetValue(clusterId, out var entry))
        {
            (destinationId, connection) = entry;
            return true;
        }

        destinationId = string.Empty;
        connection = null!;
        return false;
    }

    public void SetSticky(string clusterId, string destinationId, MllpNodeConnection connection) => _sticky[clusterId] = (destinationId, connection);

    /// <summary>Forgets the sticky connection of a cluster (the caller returns or discards it).</summary>
    public void ClearSticky(string clusterId) => _sticky.Remove(clusterId);

    public async ValueTask DisposeAsync()
    {
        await _abortRegistration.DisposeAsync();
        foreach (var (_, connection) in _sticky.Values)
        {
            await _pool.ReturnAsync(connection, Settings.PoolIdleTimeout);
        }

        _sticky.Clear();
        _attemptTimeout.Dispose();
    }

    private void CancelAttempt()
    {
        try
        {
            _attemptTimeout.Cancel();
        }
        catch (ObjectDisposedException)
        {
        }
    }
}
