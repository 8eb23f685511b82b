using System.Buffers;

namespace ImagingProxy.Mllp;

/// <summary>
/// Per inbound connection state: the node connection it sticks to in each cluster (so its messages arrive in order at
/// one receiver while that receiver is available), and buffers reused message after message.
/// </summary>
internal sealed class MllpSession(string connectionId, string listener, MllpNodePool pool) : IAsyncDisposable
{
    private readonly Dictionary<string, (string DestinationId, MllpNodeConnection Connection)> _sticky = new(StringComparer.OrdinalIgnoreCase);

    public string ConnectionId { get; } = connectionId;

    public string Listener { get; } = listener;

    /// <summary>The last acknowledgement received from a node (payload, without framing).</summary>
    public ArrayBufferWriter<byte> Ack { get; } = new(512);

    public Hl7AckReader AckReader { get; } = new();

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
        foreach (var (_, connection) in _sticky.Values)
        {
            await pool.ReturnAsync(connection);
        }

        _sticky.Clear();
    }
}
