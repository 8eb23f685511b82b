using System.Buffers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using ImagingProxy.Configuration;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
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
/// <see cref="MllpRouteTable.MaxAttempts"/> attempts with a short exponential backoff (a Polly retry pipeline), within
/// the optional <see cref="MllpRouteTable.DeliveryTimeout"/> budget. A message whose node failed after receiving it may
/// therefore reach two nodes: receivers dedupe on MSH-10 (with MSH-3/4).
/// </remarks>
internal sealed partial class MllpForwarder(
    MllpNodePool pool,
    IDestinationHealthUpdater health,
    MllpProxyMetrics metrics,
    TimeProvider time,
    ILogger<MllpForwarder> logger,
    NodeTls? nodeTls = null)
{
    private readonly NodeTls _nodeTls = nodeTls ?? new NodeTls();

    /// <summary>Backoff before the second attempt; doubles for each later one (10, 20, 40 ms ...).</summary>
    internal static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(10);

    private readonly Func<MllpRouteTable, ResiliencePipeline<MllpAttemptResult>> _buildPipeline = settings => BuildPipeline(settings, time);

    private int _rotation;

    /// <summary>
    /// The retry pipeline of one configuration generation: <see cref="MllpRouteTable.MaxAttempts"/> attempts in all,
    /// exponential backoff from <see cref="FirstBackoff"/>, retrying only an attempt whose node failed (not "no node left",
    /// not an acknowledged message).
    /// </summary>
    internal static ResiliencePipeline<MllpAttemptResult> BuildPipeline(MllpRouteTable settings, TimeProvider time)
    {
        if (settings.MaxAttempts <= 1)
        {
            return ResiliencePipeline<MllpAttemptResult>.Empty;
        }

        return new ResiliencePipelineBuilder<MllpAttemptResult> { TimeProvider = time }
            .AddRetry(new RetryStrategyOptions<MllpAttemptResult>
            {
                MaxRetryAttempts = settings.MaxAttempts - 1,
                BackoffType = DelayBackoffType.Exponential,
                Delay = FirstBackoff,
                UseJitter = false,
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Result.Outcome == MllpAttemptOutcome.Failed),
            })
            .Build();
    }

    /// <summary>
    /// Starts delivering a message: its first attempt, which is the whole delivery for almost every message.
    /// <see cref="FinishAsync"/> takes the result. The two halves are awaited one after the other by the caller rather
    /// than inside one delivery method: each async level a message passes through costs it a suspension and a
    /// resumption, 1-2 µs of CPU per level in paired runs (bench/ab.sh), and the second half completes synchronously
    /// unless the first attempt failed.
    /// </summary>
    public ValueTask<MllpAttemptResult> FirstAttemptAsync(MllpSession session, ClusterState cluster, ReadOnlySequence<byte> message, MllpRouteTable settings)
    {
        session.Cluster = cluster;
        session.Message = message;
        session.Settings = settings;
        session.Failed.Clear();
        session.FreshRetryUsed = false;
        session.Attempts = 0;
        session.DeliveryStarted = time.GetTimestamp();
        return AttemptAsync(session, session.Aborted);
    }

    /// <summary>
    /// Ends the delivery <see cref="FirstAttemptAsync"/> started: a failed first attempt is handed to the retry pipeline
    /// (attempts 2 to <see cref="MllpRouteTable.MaxAttempts"/>); any other result is final and returned synchronously.
    /// </summary>
    public ValueTask<MllpDelivery> FinishAsync(MllpSession session, MllpAttemptResult first)
        => first.Outcome == MllpAttemptOutcome.Failed && !session.Aborted.IsCancellationRequested
            ? RetryAndFinishAsync(session, first)
            : ValueTask.FromResult(Finish(session, first));

    private async ValueTask<MllpDelivery> RetryAndFinishAsync(MllpSession session, MllpAttemptResult first)
        => Finish(session, await RetryAsync(session, session.Settings, first));

    private static MllpDelivery Finish(MllpSession session, MllpAttemptResult result)
    {
        session.Message = default;
        session.Cluster = null;
        if (session.Aborted.IsCancellationRequested)
        {
            return new MllpDelivery(MllpDeliveryOutcome.Aborted, null, session.Attempts, AcknowledgmentCode.None);
        }

        return result.Outcome switch
        {
            MllpAttemptOutcome.Faulted => new MllpDelivery(MllpDeliveryOutcome.Faulted, null, session.Attempts, AcknowledgmentCode.None),
            MllpAttemptOutcome.Acknowledged => new MllpDelivery(MllpDeliveryOutcome.Acknowledged, result.DestinationId, session.Attempts, result.AckCode),
            _ when session.Attempts == 0 && session.Failed.Count == 0 => new MllpDelivery(MllpDeliveryOutcome.NoDestination, null, 0, AcknowledgmentCode.None),
            _ => new MllpDelivery(MllpDeliveryOutcome.Undelivered, null, session.Attempts, AcknowledgmentCode.None),
        };
    }

    /// <summary>
    /// Attempts 2 to <see cref="MllpRouteTable.MaxAttempts"/> through the retry pipeline. The pipeline's first execution
    /// hands back the first attempt's failure (already run), so its backoff and attempt count are those of the whole
    /// delivery.
    /// </summary>
    private async ValueTask<MllpAttemptResult> RetryAsync(MllpSession session, MllpRouteTable settings, MllpAttemptResult firstFailure)
    {
        var pipeline = settings.GetPipeline(_buildPipeline);
        var context = ResilienceContextPool.Shared.Get(session.Aborted);
        try
        {
            var state = new RetryState(this, session, firstFailure);
            var outcome = await pipeline.ExecuteOutcomeAsync(
                static async (context, state) => Outcome.FromResult(state.TakeFirst(out var first) ? first : await state.Forwarder.AttemptAsync(state.Session, context.CancellationToken)),
                context,
                state);
            return outcome.Exception is null ? outcome.Result : new MllpAttemptResult(MllpAttemptOutcome.Faulted, null, AcknowledgmentCode.None);
        }
        finally
        {
            ResilienceContextPool.Shared.Return(context);
        }
    }

    /// <summary>What the retry pipeline's callback needs: the first attempt's failure is handed back once.</summary>
    private sealed class RetryState(MllpForwarder forwarder, MllpSession session, MllpAttemptResult first)
    {
        private bool _taken;

        public MllpForwarder Forwarder { get; } = forwarder;

        public MllpSession Session { get; } = session;

        public bool TakeFirst(out MllpAttemptResult result)
        {
            result = first;
            if (_taken)
            {
                return false;
            }

            _taken = true;
            return true;
        }
    }

    /// <summary>
    /// One attempt: pick a node, send, wait for its ACK (within the ACK timeout and the delivery budget). The exchange is
    /// written out here rather than in a method of its own: each async level a message passes through costs it a
    /// suspension and a resumption (1-2 µs of CPU per level in paired runs, bench/ab.sh).
    /// </summary>
    private async ValueTask<MllpAttemptResult> AttemptAsync(MllpSession session, CancellationToken aborted)
    {
        var cluster = session.Cluster!;
        var settings = session.Settings;
        try
        {
            while (true)
            {
                if (aborted.IsCancellationRequested)
                {
                    return new MllpAttemptResult(MllpAttemptOutcome.Exhausted, null, AcknowledgmentCode.None);
                }

                var ackTimeout = settings.AckTimeout;
                if (settings.DeliveryTimeout is { } budget)
                {
                    var left = budget - time.GetElapsedTime(session.DeliveryStarted);
                    if (left <= TimeSpan.Zero)
                    {
                        return new MllpAttemptResult(MllpAttemptOutcome.Exhausted, null, AcknowledgmentCode.None);
                    }

                    ackTimeout = left < ackTimeout ? left : ackTimeout;
                }

                var destination = Pick(session, cluster, session.Failed, out var node);
                if (destination is null)
                {
                    return new MllpAttemptResult(MllpAttemptOutcome.Exhausted, null, AcknowledgmentCode.None);
                }

                if (session.Attempts++ > 0 && !session.FreshRetryUsedNow)
                {
                    // The previous attempt's node is the last one that failed (a stale pooled connection is not counted).
                    metrics.Retried(cluster.ClusterId, session.Failed.Count > 0 ? session.Failed[^1].DestinationId : string.Empty);
                }

                session.FreshRetryUsedNow = false;
                string? reason = null;
                var reused = false;
                if (node is null)
                {
                    (node, reason) = await RentAsync(session, cluster, destination, settings);
                }

                if (node is not null)
                {
                    reused = node.Used;
                    var tlsFirstUse = node.IsTls && !node.Used;
                    var sessionEnded = false;
                    var unsolicited = node.UnsolicitedFrames;
                    session.Ack.ResetWrittenCount();
                    var timeout = session.StartAttemptTimeout(ackTimeout);
                    try
                    {
                        if (!await node.SendAsync(session.Message, timeout))
                        {
                            reason = "connection closed while sending";
                            sessionEnded = true;
                        }
                        else
                        {
                            // The ACK wait, awaited here on the node's socket (not through node.ReceiveAsync, one level less).
                            // The timeout ends it by shutting the connection's receive side (the receive returns 0).
                            MllpReadResult read;
                            using (node.StopReceivingOn(timeout))
                            {
                                while ((read = node.TakeFrame(session.Ack)) == MllpReadResult.NeedMoreData)
                                {
                                    var received = await node.ReceiveMoreAsync(timeout);
                                    if (received == 0)
                                    {
                                        break;
                                    }

                                    node.Received(received);
                                }
                            }

                            if (read != MllpReadResult.Frame && timeout.IsCancellationRequested)
                            {
                                reason = TimedOut(session, ackTimeout);
                                reused = false;
                            }
                            else
                            {
                                reason = read switch
                                {
                                    MllpReadResult.Frame => null,
                                    MllpReadResult.FrameTooLarge => $"ACK larger than the maximum frame size of {settings.MaxFrameSize} bytes",
                                    _ => "connection closed before an ACK",
                                };
                                sessionEnded = read == MllpReadResult.NeedMoreData;
                            }
                        }
                    }
                    catch (Exception ex) when (timeout.IsCancellationRequested && ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
                    {
                        reason = TimedOut(session, ackTimeout);
                        reused = false;
                    }
                    catch (Exception ex) when (ex is IOException or SocketException or ConnectionResetException or ConnectionAbortedException or InvalidOperationException)
                    {
                        reason = $"{ex.GetType().Name}: {ex.Message}";
                        sessionEnded = true;
                    }
                    finally
                    {
                        session.StopAttemptTimeout();
                    }

                    if (sessionEnded && tlsFirstUse)
                    {
                        // TLS 1.3: a node that refuses ImagingProxy's client certificate says so only after the handshake.
                        reason = $"{reason}; the TLS session ended on the connection's first message {NodeTls.ClientCertificateRefusedHint}";
                    }

                    if (node.UnsolicitedFrames != unsolicited)
                    {
                        Log.UnsolicitedDiscarded(logger, session.ConnectionId, destination.DestinationId, node.UnsolicitedFrames - unsolicited);
                    }

                    if (reason is null)
                    {
                        var code = session.AckReader.TryRead(new ReadOnlySequence<byte>(session.Ack.WrittenMemory), out var ack) == Hl7ReadStatus.Success ? ack.Code : AcknowledgmentCode.None;
                        if (code == AcknowledgmentCode.None || !ack.Acknowledges(session.Header))
                        {
                            // protocols.md §3.7: log it, relay anyway, never re-pair.
                            Log.AckMismatch(logger, session.ConnectionId, session.Header.MessageControlId.GetString(), destination.DestinationId, code == AcknowledgmentCode.None ? "(unreadable)" : ack.AcknowledgedControlId.GetString());
                        }

                        return new MllpAttemptResult(MllpAttemptOutcome.Acknowledged, destination.DestinationId, code);
                    }

                    session.ClearSticky(cluster.ClusterId);
                    await pool.DiscardAsync(node);
                }

                if (aborted.IsCancellationRequested)
                {
                    return new MllpAttemptResult(MllpAttemptOutcome.Exhausted, null, AcknowledgmentCode.None);
                }

                if (reused && !session.FreshRetryUsed)
                {
                    // A reused connection the node had closed (idle timeout, restart): one more try on a new connection, not counted.
                    session.FreshRetryUsed = true;
                    session.FreshRetryUsedNow = true;
                    session.Attempts--;
                    continue;
                }

                Log.AttemptFailed(logger, session.ConnectionId, session.Header.MessageControlId.GetString(), cluster.ClusterId, destination.DestinationId, session.Attempts, reason!);
                session.Failed.Add(destination);
                MarkUnhealthy(cluster, destination);
                return new MllpAttemptResult(MllpAttemptOutcome.Failed, null, AcknowledgmentCode.None);
            }
        }
        catch (Exception ex)
        {
            // Not a node's failure (those are results above): a fault of ours. The sender gets AR/CR and sends again.
            Log.AttemptThrew(logger, session.ConnectionId, session.Header.MessageControlId.GetString(), ex);
            return new MllpAttemptResult(MllpAttemptOutcome.Faulted, null, AcknowledgmentCode.None);
        }
    }

    /// <summary>The failure reason of an attempt whose timeout fired: the ACK timeout, or the inbound connection's abort.</summary>
    private static string TimedOut(MllpSession session, TimeSpan ackTimeout)
        => session.Aborted.IsCancellationRequested ? "inbound connection aborted" : $"no ACK within {ackTimeout.TotalSeconds:0.###} s";

    /// <summary>
    /// A pooled connection to <paramref name="destination"/>, which becomes the session's sticky one for the cluster (the
    /// previous sticky one goes back to the pool). Null with the reason when connecting failed.
    /// </summary>
    private async ValueTask<(MllpNodeConnection? Node, string? Failure)> RentAsync(MllpSession session, ClusterState cluster, DestinationState destination, MllpRouteTable settings)
    {
        if (session.TryGetSticky(cluster.ClusterId, out _, out var previous))
        {
            session.ClearSticky(cluster.ClusterId);
            await pool.ReturnAsync(previous, settings.PoolIdleTimeout);
        }

        var address = destination.Model.Config.Address;
        SslClientAuthenticationOptions? tls = null;
        if (TcpAddress.TryParse(address, out var target) && target.Tls)
        {
            try
            {
                tls = _nodeTls.ClientOptions(cluster.Model.Config, destination.Model.Config, target);
            }
            catch (InvalidOperationException ex)
            {
                return (null, $"TLS settings: {ex.Message}");
            }
        }

        MllpNodeConnection node;
        try
        {
            node = await pool.RentAsync(address, settings.MaxFrameSize, settings.ConnectTimeout, tls, session.Aborted);
        }
        catch (SocketException ex)
        {
            return (null, $"connect failed: {ex.SocketErrorCode}");
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            return (null, $"TLS handshake: {ex.Message}");
        }
        catch (OperationCanceledException) when (session.Aborted.IsCancellationRequested)
        {
            return (null, "inbound connection aborted");
        }

        if (tls is not null)
        {
            _nodeTls.Observe(cluster.ClusterId, destination.DestinationId, node.RemoteCertificate);
        }

        session.SetSticky(cluster.ClusterId, destination.DestinationId, node);
        return (node, null);
    }

    /// <summary>
    /// The inbound connection's sticky node while it is available and has not failed this message (<paramref name="sticky"/>
    /// is then its connection), else the available node with the fewest rented connections.
    /// </summary>
    private DestinationState? Pick(MllpSession session, ClusterState cluster, List<DestinationState> failed, out MllpNodeConnection? sticky)
    {
        var available = cluster.DestinationsState.AvailableDestinations;
        if (session.TryGetSticky(cluster.ClusterId, out var stickyId, out var connection))
        {
            // Indexed, not foreach: this runs per message and an interface enumerator is an allocation.
            for (var i = 0; i < available.Count; i++)
            {
                var destination = available[i];
                if (destination.DestinationId == stickyId && !failed.Contains(destination))
                {
                    sticky = connection;
                    return destination;
                }
            }
        }

        sticky = null;

        DestinationState? best = null;
        var bestLoad = int.MaxValue;
        var start = (int)((uint)Interlocked.Increment(ref _rotation) % (uint)Math.Max(1, available.Count));
        for (var i = 0; i < available.Count; i++)
        {
            var destination = available[(start + i) % available.Count];
            if (failed.Contains(destination))
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

        [LoggerMessage(EventId = 4104, Level = LogLevel.Error, Message = "MLLP connection {ConnectionId}: delivering message {ControlId} failed inside ImagingProxy; the sender gets AR/CR and sends it again (a node may already have it).")]
        public static partial void AttemptThrew(ILogger logger, string connectionId, string controlId, Exception exception);

        [LoggerMessage(EventId = 4103, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: node {Destination} sent {Count} frame(s) while no message was in flight (late application ACK?); discarded, never paired with the next message.")]
        public static partial void UnsolicitedDiscarded(ILogger logger, string connectionId, string destination, int count);
    }
}
