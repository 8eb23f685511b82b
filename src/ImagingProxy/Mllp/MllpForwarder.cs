using System.Buffers;
using System.Net.Sockets;
using ImagingProxy.Configuration;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Mllp;

/// <summary>
/// Delivers one message to one node of a cluster and brings back that node's acknowledgement: at-least-once, with
/// failover (protocols.md §3.7).
/// </summary>
/// <remarks>
/// A message goes to the inbound connection's sticky node while that node is available, else to the available node
/// with the fewest rented connections. When a node fails (connect error, closed connection, no ACK within the ACK
/// timeout) its connection is discarded (a late ACK must never be paired with a later message), the node is marked
/// passively unhealthy when the cluster enables passive health, and the same bytes go to another available node, up to
/// <see cref="ProxyDefaults.MaxAttempts"/> attempts with a short exponential backoff. A message whose node failed after
/// receiving it may therefore reach two nodes: receivers dedupe on MSH-10 (with MSH-3/4).
/// </remarks>
internal sealed partial class MllpForwarder(
    MllpNodePool pool,
    IDestinationHealthUpdater health,
    MllpProxyMetrics metrics,
    TimeProvider time,
    ILogger<MllpForwarder> logger)
{
    private static readonly TimeSpan s_firstBackoff = TimeSpan.FromMilliseconds(10);

    private int _rotation;

    public async Task<MllpDelivery> DeliverAsync(MllpSession session, ClusterState cluster, ReadOnlySequence<byte> message, Hl7Header header, MllpRouteTable settings)
    {
        List<DestinationState>? failed = null;
        var freshRetryUsed = false;
        for (var attempt = 1; attempt <= ProxyDefaults.MaxAttempts; attempt++)
        {
            var destination = Pick(session, cluster, failed);
            if (destination is null)
            {
                return new MllpDelivery(attempt == 1 ? MllpDeliveryOutcome.NoDestination : MllpDeliveryOutcome.Undelivered, null, attempt - 1, AcknowledgmentCode.None);
            }

            if (attempt > 1)
            {
                metrics.Retried(cluster.ClusterId);
                await Task.Delay(s_firstBackoff * (1 << (attempt - 2)), time);
            }

            var failure = await TryOnceAsync(session, cluster, destination, message, settings);
            if (failure is null)
            {
                var code = session.AckReader.TryRead(new ReadOnlySequence<byte>(session.Ack.WrittenMemory), out var ack) == Hl7ReadStatus.Success ? ack.Code : AcknowledgmentCode.None;
                if (code == AcknowledgmentCode.None || !ack.Acknowledges(header))
                {
                    // protocols.md §3.7: log it, relay anyway, never re-pair.
                    Log.AckMismatch(logger, session.ConnectionId, header.MessageControlId.GetString(), destination.DestinationId, code == AcknowledgmentCode.None ? "(unreadable)" : ack.AcknowledgedControlId.GetString());
                }

                return new MllpDelivery(MllpDeliveryOutcome.Acknowledged, destination.DestinationId, attempt, code);
            }

            if (failure.Value.StaleReuse && !freshRetryUsed)
            {
                // A reused connection the node had closed (idle timeout, restart): one more try on a new connection, not counted.
                freshRetryUsed = true;
                attempt--;
                continue;
            }

            Log.AttemptFailed(logger, session.ConnectionId, header.MessageControlId.GetString(), cluster.ClusterId, destination.DestinationId, attempt, failure.Value.Reason);
            (failed ??= []).Add(destination);
            MarkUnhealthy(cluster, destination);
        }

        return new MllpDelivery(MllpDeliveryOutcome.Undelivered, null, ProxyDefaults.MaxAttempts, AcknowledgmentCode.None);
    }

    private async Task<(string Reason, bool StaleReuse)?> TryOnceAsync(MllpSession session, ClusterState cluster, DestinationState destination, ReadOnlySequence<byte> message, MllpRouteTable settings)
    {
        MllpNodeConnection node;
        if (session.TryGetSticky(cluster.ClusterId, out var stickyId, out var sticky) && stickyId == destination.DestinationId)
        {
            node = sticky;
        }
        else
        {
            if (session.TryGetSticky(cluster.ClusterId, out _, out var previous))
            {
                session.ClearSticky(cluster.ClusterId);
                await pool.ReturnAsync(previous);
            }

            try
            {
                node = await pool.RentAsync(destination.Model.Config.Address, settings.MaxFrameSize, ProxyDefaults.ConnectTimeout, CancellationToken.None);
            }
            catch (SocketException ex)
            {
                return ($"connect failed: {ex.SocketErrorCode}", false);
            }

            session.SetSticky(cluster.ClusterId, destination.DestinationId, node);
        }

        var reused = node.Used;
        var unsolicited = node.UnsolicitedFrames;
        session.Ack.ResetWrittenCount();
        string? reason;
        using (var timeout = new CancellationTokenSource(settings.AckTimeout, time))
        {
            try
            {
                reason = !await node.SendAsync(message, timeout.Token) ? "connection closed while sending"
                    : !await node.ReceiveAsync(session.Ack, timeout.Token) ? "connection closed before an ACK"
                    : null;
            }
            catch (OperationCanceledException) when (timeout.IsCancellationRequested)
            {
                reason = $"no ACK within {settings.AckTimeout.TotalSeconds:0.###} s";
                reused = false;
            }
            catch (Exception ex) when (ex is IOException or SocketException or ConnectionResetException or ConnectionAbortedException or InvalidOperationException)
            {
                reason = $"{ex.GetType().Name}: {ex.Message}";
            }
        }

        if (node.UnsolicitedFrames != unsolicited)
        {
            Log.UnsolicitedDiscarded(logger, session.ConnectionId, destination.DestinationId, node.UnsolicitedFrames - unsolicited);
        }

        if (reason is null)
        {
            return null;
        }

        session.ClearSticky(cluster.ClusterId);
        await pool.DiscardAsync(node);
        return (reason, reused);
    }

    private DestinationState? Pick(MllpSession session, ClusterState cluster, List<DestinationState>? failed)
    {
        var available = cluster.DestinationsState.AvailableDestinations;
        if (session.TryGetSticky(cluster.ClusterId, out var stickyId, out _))
        {
            foreach (var destination in available)
            {
                if (destination.DestinationId == stickyId && failed?.Contains(destination) != true)
                {
                    return destination;
                }
            }
        }

        DestinationState? best = null;
        var bestLoad = int.MaxValue;
        var start = (int)((uint)Interlocked.Increment(ref _rotation) % (uint)Math.Max(1, available.Count));
        for (var i = 0; i < available.Count; i++)
        {
            var destination = available[(start + i) % available.Count];
            if (failed?.Contains(destination) == true)
            {
                continue;
            }

            var load = pool.RentedCount(destination.Model.Config.Address);
            if (load < bestLoad)
            {
                best = destination;
                bestLoad = load;
            }
        }

        return best;
    }

    private void MarkUnhealthy(ClusterState cluster, DestinationState destination)
    {
        var passive = cluster.Model.Config.HealthCheck?.Passive;
        if (passive?.Enabled == true)
        {
            health.SetPassive(cluster, destination, DestinationHealth.Unhealthy, passive.ReactivationPeriod ?? ProxyDefaults.ReactivationPeriod);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 4101, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: message {ControlId} not acknowledged by {Cluster}/{Destination} (attempt {Attempt}): {Reason}.")]
        public static partial void AttemptFailed(ILogger logger, string connectionId, string controlId, string cluster, string destination, int attempt, string reason);

        [LoggerMessage(EventId = 4102, Level = LogLevel.Error, Message = "MLLP connection {ConnectionId}: protocol error, node {Destination} acknowledged message {ControlId} with MSA-2 '{AckControlId}'; relayed unchanged.")]
        public static partial void AckMismatch(ILogger logger, string connectionId, string controlId, string destination, string ackControlId);

        [LoggerMessage(EventId = 4103, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: node {Destination} sent {Count} frame(s) while no message was in flight (late application ACK?); discarded, never paired with the next message.")]
        public static partial void UnsolicitedDiscarded(ILogger logger, string connectionId, string destination, int count);
    }
}
