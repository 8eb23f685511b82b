using System.Buffers;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using ImagingProxy.Balancing;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;
using Polly;
using Polly.Retry;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.LoadBalancing;
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
    NodeTls? nodeTls = null,
    DestinationWeights? weights = null,
    DestinationLimits? limits = null)
{
    private readonly NodeTls _nodeTls = nodeTls ?? new NodeTls();
    private readonly DestinationWeights _weights = weights ?? DestinationWeights.WeightsOnly;
    private readonly DestinationLimits _limits = limits ?? DestinationLimits.Unmetered;

    /// <summary>Backoff before the second attempt; doubles for each later one (10, 20, 40 ms ...).</summary>
    internal static readonly TimeSpan FirstBackoff = TimeSpan.FromMilliseconds(10);

    private readonly Func<MllpRouteTable, ResiliencePipeline<MllpAttemptResult>> _buildPipeline = settings => BuildPipeline(settings, time);

    private int _rotation;

    /// <summary>The candidates a pick by the cluster's policy chooses among (one list per thread: a pick never awaits).</summary>
    [ThreadStatic]
    private static List<DestinationState>? s_eligible;

    private readonly WeightedPicker _picker = new(weights ?? DestinationWeights.WeightsOnly);

    /// <summary>A node's load for the cluster's policy: the node connections rented to its address (and being opened).</summary>
    private Func<DestinationState, int> LoadOfNode => _loadOfNode ??= d => pool.LoadOf(d.Model.Config.Address);

    private Func<DestinationState, int>? _loadOfNode;

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
    /// Starts delivering a message: its first attempt, which is the whole delivery for almost every message. The common
    /// case, a message to the inbound connection's sticky node whose send completes at once, runs here without an async
    /// level of its own: with <see cref="MllpAttemptStep.AwaitAck"/> the caller awaits the node's receive itself and
    /// hands each result to <see cref="Received"/> (an exception to <see cref="ReceiveFailed"/>) until
    /// <see cref="MllpAttemptStep.Done"/> (the result is <c>session.Attempt.Result</c>); with
    /// <see cref="MllpAttemptStep.Continue"/> the rest is <see cref="ContinueAsync"/>'s. <see cref="FinishAsync"/> takes
    /// the result. Each async level a message passes through costs it a suspension and a resumption, 1-2 µs of CPU per
    /// level in paired runs (bench/ab.sh).
    /// </summary>
    public MllpAttemptStep StartFirstAttempt(MllpSession session, ClusterState cluster, ReadOnlySequence<byte> message, MllpRouteTable settings, out ValueTask<int> receive)
    {
        receive = default;
        session.Cluster = cluster;
        session.Message = message;
        session.Settings = settings;
        session.Failed.Clear();
        session.FreshRetried.Clear();
        session.FreshRetryTo = null;
        session.Attempts = 0;
        session.Refusal = null;
        session.DeliveryStarted = time.GetTimestamp();
        session.Attempt.Stage = MllpAttemptStage.NotStarted;
        session.Attempt.Node = null;
        if (session.Aborted.IsCancellationRequested || !TryAckTimeout(session, settings, out var ackTimeout)
            || Sticky(session, cluster, session.Failed, out var node) is not { } destination)
        {
            // No sticky connection to send on (the connection's first message, or its node is not available): a new
            // connection is rented, or there is no node; ContinueAsync runs the whole attempt.
            return MllpAttemptStep.Continue;
        }

        CountAttempt(session, cluster);
        return Send(session, destination, node!, ackTimeout, out receive);
    }

    /// <summary>The node's receive that <see cref="MllpAttemptStep.AwaitAck"/> handed out brought <paramref name="count"/> bytes (0: the connection's receiving ended).</summary>
    public MllpAttemptStep Received(MllpSession session, int count, out ValueTask<int> receive)
    {
        var attempt = session.Attempt;
        if (count > 0)
        {
            attempt.Node!.Received(count);
            return NextReceive(session, attempt, out receive);
        }

        receive = default;
        return EndReceive(session, attempt, MllpReadResult.NeedMoreData);
    }

    /// <summary>The node's receive that <see cref="MllpAttemptStep.AwaitAck"/> handed out threw <paramref name="exception"/>.</summary>
    public MllpAttemptStep ReceiveFailed(MllpSession session, Exception exception) => Failed(session, session.Attempt, exception);

    /// <summary>
    /// The rest of a first attempt that <see cref="StartFirstAttempt"/> or <see cref="Received"/> did not finish
    /// (<see cref="MllpAttemptStep.Continue"/>): the whole attempt when nothing was sent, a send still in progress, a
    /// failure to act on; then, as for every attempt, a stale pooled connection replaced once by a new one.
    /// </summary>
    public async ValueTask<MllpAttemptResult> ContinueAsync(MllpSession session)
    {
        if (session.Attempt.Stage != MllpAttemptStage.NotStarted)
        {
            var result = await EndAttemptAsync(session, MllpAttemptStep.Continue, default, session.Aborted);
            if (result is { } ended)
            {
                return ended;
            }
        }

        return await AttemptAsync(session, session.Aborted);
    }

    /// <summary>
    /// Ends the delivery <see cref="StartFirstAttempt"/> started: a failed first attempt is handed to the retry pipeline
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
        if (result.Outcome is not (MllpAttemptOutcome.Acknowledged or MllpAttemptOutcome.Sent) && session.Refusal is { } refusal)
        {
            // A node refused the message and no node got it after that (the budget ended in the backoff, no node left,
            // connects failed, the drain deadline): the sender gets that node's refusal (still in session.Ack), not
            // ImagingProxy's own AR/CR.
            result = refusal;
        }

        session.Refusal = null;
        if (session.Aborted.IsCancellationRequested && result.Outcome != MllpAttemptOutcome.Acknowledged)
        {
            // At the drain deadline; an ACK already in hand is still relayed (the client's transport is open until Kestrel's abort).
            return new MllpDelivery(MllpDeliveryOutcome.Aborted, null, session.Attempts, AcknowledgmentCode.None);
        }

        return result.Outcome switch
        {
            MllpAttemptOutcome.Faulted => new MllpDelivery(MllpDeliveryOutcome.Faulted, null, session.Attempts, AcknowledgmentCode.None),
            MllpAttemptOutcome.Acknowledged => new MllpDelivery(MllpDeliveryOutcome.Acknowledged, result.DestinationId, session.Attempts, result.AckCode),
            MllpAttemptOutcome.Sent => new MllpDelivery(MllpDeliveryOutcome.SentWithoutAck, result.DestinationId, session.Attempts, AcknowledgmentCode.None),
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
    /// Attempts from the start: pick a node (the sticky one, else the least loaded available one, renting a connection),
    /// send, wait for its ACK within the ACK timeout and the delivery budget. A stale pooled connection is replaced once
    /// by a new one without counting as an attempt.
    /// </summary>
    private async ValueTask<MllpAttemptResult> AttemptAsync(MllpSession session, CancellationToken aborted)
    {
        var cluster = session.Cluster!;
        var settings = session.Settings;
        try
        {
            while (true)
            {
                if (aborted.IsCancellationRequested || !TryPick(session, cluster, settings, out var destination, out var node, out var ackTimeout))
                {
                    return new MllpAttemptResult(MllpAttemptOutcome.Exhausted, null, AcknowledgmentCode.None);
                }

                // The free retry after a stale pooled connection takes a new one, not another pooled one.
                var newConnection = session.FreshRetryUsedNow;
                CountAttempt(session, cluster);
                MllpAttemptResult? result;
                if (node is null)
                {
                    // The pick's reservation (a node with MaxConcurrent) goes to the rent, or back to the pool.
                    var reserved = session.Reservation is not null;
                    session.Reservation = null;

                    // The connect (and TLS handshake) gets at most what is left of the delivery budget.
                    if (!TryWithinBudget(session, settings, settings.ConnectTimeout, out var connectTimeout))
                    {
                        if (reserved)
                        {
                            pool.Unreserve(destination.Model.Config.Address);
                        }

                        return new MllpAttemptResult(MllpAttemptOutcome.Exhausted, null, AcknowledgmentCode.None);
                    }

                    string? failure;
                    bool timedOut;
                    (node, failure, timedOut) = await RentAsync(session, cluster, destination, settings, connectTimeout, newConnection, reserved);
                    if (node is null)
                    {
                        var budgetCut = timedOut && connectTimeout < settings.ConnectTimeout;
                        result = await AfterFailureAsync(session, destination, null, failure!, reused: false, budgetCut, aborted);
                        if (result is { } failed)
                        {
                            return failed;
                        }

                        continue;
                    }

                    // The ACK wait gets what the connect left of the delivery budget.
                    if (!TryAckTimeout(session, settings, out ackTimeout))
                    {
                        return new MllpAttemptResult(MllpAttemptOutcome.Exhausted, null, AcknowledgmentCode.None);
                    }
                }

                var step = Send(session, destination, node, ackTimeout, out var receive);
                result = await EndAttemptAsync(session, step, receive, aborted);
                if (result is { } ended)
                {
                    return ended;
                }
            }
        }
        catch (Exception ex)
        {
            if (session.Reservation is { } reservation)
            {
                session.Reservation = null;
                pool.Unreserve(reservation);
            }

            return await FaultAsync(session, ex);
        }
    }

    /// <summary>
    /// An attempt from where <paramref name="step"/> left it to its end: a send still in progress, the ACK awaited,
    /// a failure acted on. Null when the message goes out again at once on a new connection (a stale pooled one failed).
    /// </summary>
    private async ValueTask<MllpAttemptResult?> EndAttemptAsync(MllpSession session, MllpAttemptStep step, ValueTask<int> receive, CancellationToken aborted)
    {
        var attempt = session.Attempt;
        try
        {
            if (attempt.Stage == MllpAttemptStage.Sending)
            {
                // A send that did not complete at once (the node is slow to read).
                var sending = attempt.PendingSend!;
                attempt.PendingSend = null;
                try
                {
                    var sent = await sending;
                    step = Sent(session, attempt, sent, out receive);
                }
                catch (Exception ex)
                {
                    step = Failed(session, attempt, ex);
                }
            }

            while (step == MllpAttemptStep.AwaitAck)
            {
                int received;
                try
                {
                    received = await receive;
                }
                catch (Exception ex)
                {
                    step = ReceiveFailed(session, ex);
                    break;
                }

                step = Received(session, received, out receive);
            }

            if (attempt.Stage == MllpAttemptStage.Done)
            {
                return attempt.Result;
            }

            if (attempt.Fault is { } fault)
            {
                return await FaultAsync(session, fault);
            }

            if (attempt.Stage == MllpAttemptStage.Rejected)
            {
                return await AfterRejectAsync(session, attempt);
            }

            var cut = attempt.TimedOut && attempt.AckTimeout < session.Settings.AckTimeout;
            return await AfterFailureAsync(session, attempt.Destination!, attempt.Node, attempt.Failure!, attempt.Reused, cut, aborted);
        }
        catch (Exception ex)
        {
            return await FaultAsync(session, ex);
        }
    }

    /// <summary>
    /// The node for the next attempt: false when the delivery budget is spent or no node is left (<see cref="Pick"/>).
    /// <paramref name="node"/> is the sticky connection when that node is picked.
    /// </summary>
    private bool TryPick(MllpSession session, ClusterState cluster, MllpRouteTable settings, out DestinationState destination, out MllpNodeConnection? node, out TimeSpan ackTimeout)
    {
        node = null;
        destination = null!;
        if (!TryAckTimeout(session, settings, out ackTimeout) || Pick(session, cluster, session.Failed, out node) is not { } picked)
        {
            return false;
        }

        destination = picked;
        return true;
    }

    /// <summary>The next attempt's ACK timeout: <see cref="MllpRouteTable.AckTimeout"/>, or less when the delivery budget ends sooner; false when it is spent.</summary>
    private bool TryAckTimeout(MllpSession session, MllpRouteTable settings, out TimeSpan ackTimeout)
        => TryWithinBudget(session, settings, settings.AckTimeout, out ackTimeout);

    /// <summary><paramref name="timeout"/>, or what is left of the delivery budget when that is less; false when the budget is spent.</summary>
    private bool TryWithinBudget(MllpSession session, MllpRouteTable settings, TimeSpan timeout, out TimeSpan bounded)
    {
        bounded = timeout;
        if (settings.DeliveryTimeout is { } budget)
        {
            var left = budget - time.GetElapsedTime(session.DeliveryStarted);
            if (left <= TimeSpan.Zero)
            {
                return false;
            }

            bounded = left < timeout ? left : timeout;
        }

        return true;
    }

    /// <summary>Counts an attempt about to run; from the second on (a stale connection's replacement aside), a retry.</summary>
    private void CountAttempt(MllpSession session, ClusterState cluster)
    {
        if (session.Attempts++ > 0 && !session.FreshRetryUsedNow)
        {
            // The previous attempt's node is the last one that failed (a stale pooled connection is not counted).
            metrics.Retried(cluster.ClusterId, session.Failed.Count > 0 ? session.Failed[^1].DestinationId : string.Empty);
        }

        session.FreshRetryUsedNow = false;
    }

    /// <summary>Begins an attempt on <paramref name="node"/>: arms its timeout and sends the message (the usual send completes at once).</summary>
    private MllpAttemptStep Send(MllpSession session, DestinationState destination, MllpNodeConnection node, TimeSpan ackTimeout, out ValueTask<int> receive)
    {
        var attempt = session.Attempt;
        attempt.Destination = destination;
        attempt.Node = node;
        attempt.Reused = node.Used;
        attempt.TlsFirstUse = node.IsTls && !node.Used;
        attempt.UnsolicitedBefore = node.UnsolicitedFrames;
        attempt.OutsideBytesBefore = node.BytesOutsideFrames;
        attempt.AckTimeout = ackTimeout;
        attempt.Failure = null;
        attempt.TimedOut = false;
        session.Refusal = null; // the ACK buffer no longer holds it
        session.Ack.ResetWrittenCount();
        attempt.Timeout = session.StartAttemptTimeout(ackTimeout);
        var send = node.SendAsync(session.Message, attempt.Timeout, session.Header.IsAcceptAcknowledgmentNever);
        if (!send.IsCompleted)
        {
            receive = default;
            attempt.PendingSend = send.AsTask();
            attempt.Stage = MllpAttemptStage.Sending;
            return MllpAttemptStep.Continue;
        }

        bool sent;
        try
        {
            sent = send.Result;
        }
        catch (Exception ex)
        {
            receive = default;
            return Failed(session, attempt, ex);
        }

        return Sent(session, attempt, sent, out receive);
    }

    /// <summary>The message was sent (or the node had closed the connection): the ACK wait begins, unless MSH-15 is NE.</summary>
    private MllpAttemptStep Sent(MllpSession session, MllpAttempt attempt, bool sent, out ValueTask<int> receive)
    {
        if (!sent)
        {
            receive = default;
            return Conclude(session, attempt, "connection closed while sending", sessionEnded: true);
        }

        attempt.Node!.Sent(session.Header.MessageControlId.Span);
        if (session.Header.IsAcceptAcknowledgmentNever)
        {
            // The receiver sends no accept ACK: the delivery ends with the send (no timeout, no failover, no health mark).
            receive = default;
            Disarm(session, attempt);
            attempt.Node!.SentWithoutAck();
            attempt.Result = new MllpAttemptResult(MllpAttemptOutcome.Sent, attempt.Destination!.DestinationId, AcknowledgmentCode.None);
            attempt.Stage = MllpAttemptStage.Done;
            return MllpAttemptStep.Done;
        }

        // The timeout ends the wait by shutting the connection's receive side (the receive returns 0).
        attempt.Stage = MllpAttemptStage.Receiving;
        attempt.StopReceiving = attempt.Node!.StopReceivingOn(attempt.Timeout);
        return NextReceive(session, attempt, out receive);
    }

    /// <summary>Takes the ACK if it is all there, else hands out the next receive from the node.</summary>
    private MllpAttemptStep NextReceive(MllpSession session, MllpAttempt attempt, out ValueTask<int> receive)
    {
        var node = attempt.Node!;
        var read = node.TakeFrame(session.Ack);
        while (read == MllpReadResult.Frame && IsLateAnswer(session, attempt, node))
        {
            // protocols.md §3.7: never pair an ACK with the wrong message. A frame answering one of the messages sent before
            // this one on the connection (a node that acknowledged it twice, or an enhanced-mode application ACK, after the
            // check before this send) is dropped; the wait goes on.
            node.DroppedLateAnswer();
            session.Ack.ResetWrittenCount();
            read = node.TakeFrame(session.Ack);
        }

        if (read == MllpReadResult.NeedMoreData)
        {
            receive = node.ReceiveMoreAsync();
            return MllpAttemptStep.AwaitAck;
        }

        receive = default;
        return EndReceive(session, attempt, read);
    }

    /// <summary>
    /// Reads the frame just taken as an acknowledgement (kept in the attempt for <see cref="Conclude"/>); true when it
    /// answers one of the messages sent on this connection before the current one (the last
    /// <see cref="MllpNodeConnection.SentHistory"/>), not the current one.
    /// </summary>
    private static bool IsLateAnswer(MllpSession session, MllpAttempt attempt, MllpNodeConnection node)
    {
        attempt.AckRead = session.AckReader.TryRead(new ReadOnlySequence<byte>(session.Ack.WrittenMemory), out var ack) == Hl7ReadStatus.Success;
        attempt.Ack = ack;
        return attempt.AckRead && !ack.Acknowledges(session.Header) && node.AcknowledgesPrevious(ack);
    }

    /// <summary>The ACK wait is over: an ACK frame, an oversize frame, or the connection's receiving ended (closed, or stopped by the timeout).</summary>
    private MllpAttemptStep EndReceive(MllpSession session, MllpAttempt attempt, MllpReadResult read)
    {
        if (read != MllpReadResult.Frame && attempt.Timeout.IsCancellationRequested)
        {
            attempt.Reused = false;
            attempt.TimedOut = true;
            return Conclude(session, attempt, TimedOut(session, attempt.AckTimeout), sessionEnded: false);
        }

        var reason = read switch
        {
            MllpReadResult.Frame => null,
            MllpReadResult.FrameTooLarge => $"ACK larger than the maximum frame size of {session.Settings.MaxFrameSize} bytes",
            _ => "connection closed before an ACK",
        };
        return Conclude(session, attempt, reason, sessionEnded: read == MllpReadResult.NeedMoreData);
    }

    /// <summary>A send or receive of the attempt threw: a timeout, a transport failure, or (anything else) a fault of ours.</summary>
    private MllpAttemptStep Failed(MllpSession session, MllpAttempt attempt, Exception exception)
    {
        if (attempt.Timeout.IsCancellationRequested && exception is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
            attempt.Reused = false;
            attempt.TimedOut = true;
            return Conclude(session, attempt, TimedOut(session, attempt.AckTimeout), sessionEnded: false);
        }

        if (exception is IOException or SocketException or ConnectionResetException or ConnectionAbortedException or InvalidOperationException)
        {
            return Conclude(session, attempt, $"{exception.GetType().Name}: {exception.Message}", sessionEnded: true);
        }

        Disarm(session, attempt);
        attempt.Fault = exception;
        attempt.Stage = MllpAttemptStage.Failed;
        return MllpAttemptStep.Continue;
    }

    /// <summary>
    /// Ends an attempt that a fault of ImagingProxy's own interrupted (not a node's failure): the sender gets AR/CR and
    /// sends again. The attempt's node connection, whose ACK may still be on its way, is discarded rather than kept for
    /// the next message; its timer and timeout registration are disarmed.
    /// </summary>
    public async ValueTask<MllpAttemptResult> FaultAsync(MllpSession session, Exception exception)
    {
        Log.AttemptThrew(logger, session.ConnectionId, session.Header.MessageControlId.GetLogString(), exception);
        var attempt = session.Attempt;
        Disarm(session, attempt);
        attempt.Fault = null;
        attempt.Stage = MllpAttemptStage.NotStarted;
        if (attempt.Node is { } node)
        {
            attempt.Node = null;
            if (session.Cluster is { } cluster)
            {
                session.ClearSticky(cluster.ClusterId);
            }

            await pool.DiscardAsync(node);
        }

        return new MllpAttemptResult(MllpAttemptOutcome.Faulted, null, AcknowledgmentCode.None);
    }

    /// <summary>
    /// The attempt's outcome: the node's ACK (read for its code, checked against the message), or its failure with the
    /// reason to log (<see cref="MllpAttemptStage.Failed"/>, acted on by <see cref="AfterFailureAsync"/>).
    /// </summary>
    private MllpAttemptStep Conclude(MllpSession session, MllpAttempt attempt, string? reason, bool sessionEnded)
    {
        Disarm(session, attempt);
        var node = attempt.Node!;
        var destination = attempt.Destination!;
        if (reason is not null && sessionEnded && attempt.TlsFirstUse)
        {
            // TLS 1.3: a node that refuses ImagingProxy's client certificate says so only after the handshake.
            reason = $"{reason}; the TLS session ended on the connection's first message {NodeTls.ClientCertificateRefusedHint}";
        }

        if (node.UnsolicitedFrames != attempt.UnsolicitedBefore)
        {
            Log.UnsolicitedDiscarded(logger, session.ConnectionId, destination.DestinationId, node.UnsolicitedFrames - attempt.UnsolicitedBefore);
            metrics.NodeFramesDropped(session.Cluster!.ClusterId, destination.DestinationId, node.UnsolicitedFrames - attempt.UnsolicitedBefore);
        }

        if (reason is not null)
        {
            // What the node did send instead of an ACK frame: an answer without MLLP framing (or not HL7 at all: a wrong
            // port) is not a silent node, and "no ACK within 30 s" alone sends the operator looking at the wrong thing.
            if (node.BytesOutsideFrames != attempt.OutsideBytesBefore)
            {
                reason = $"{reason}; the node sent {node.BytesOutsideFrames - attempt.OutsideBytesBefore} byte(s) outside an MLLP frame (not <VT>...<FS><CR>), discarded";
            }

            if (node.UnfinishedFrameBytes > 0)
            {
                reason = $"{reason}; {node.UnfinishedFrameBytes} byte(s) of a frame whose end (<FS><CR>) never came";
            }

            attempt.Failure = reason;
            attempt.Stage = MllpAttemptStage.Failed;
            return MllpAttemptStep.Continue;
        }

        // The frame was read in NextReceive (IsLateAnswer).
        var ack = attempt.Ack;
        var code = attempt.AckRead ? ack.Code : AcknowledgmentCode.None;
        if (code == AcknowledgmentCode.None || !ack.Acknowledges(session.Header))
        {
            // protocols.md §3.7: log it, relay anyway, never re-pair.
            Log.AckMismatch(logger, session.ConnectionId, session.Header.MessageControlId.GetLogString(), destination.DestinationId, code == AcknowledgmentCode.None ? "(unreadable)" : ack.AcknowledgedControlId.GetLogString());
        }
        else if (code is AcknowledgmentCode.ApplicationReject or AcknowledgmentCode.CommitReject && RetriesOnReject(session.Cluster!)
            && CanTryAnother(session, destination))
        {
            attempt.Stage = MllpAttemptStage.Rejected;
            return MllpAttemptStep.Continue;
        }

        attempt.Result = new MllpAttemptResult(MllpAttemptOutcome.Acknowledged, destination.DestinationId, code);
        attempt.Stage = MllpAttemptStage.Done;
        return MllpAttemptStep.Done;
    }

    /// <summary>The cluster's <c>Mllp.RetryOnReject</c> (validated): read only when a node rejected a message.</summary>
    private static bool RetriesOnReject(ClusterState cluster)
        => cluster.Model.Config.Metadata?.GetValueOrDefault(MetadataKeys.MllpRetryOnReject) is { } text && bool.TryParse(text, out var on) && on;

    /// <summary>
    /// Whether a message <paramref name="rejecting"/> refused can go to another node: an attempt is left, an available
    /// node has not failed or refused it, and the delivery budget is not spent. Otherwise the refusal is the answer.
    /// </summary>
    private bool CanTryAnother(MllpSession session, DestinationState rejecting)
    {
        if (session.Attempts >= session.Settings.MaxAttempts || session.Aborted.IsCancellationRequested || !TryAckTimeout(session, session.Settings, out _))
        {
            return false;
        }

        var available = session.Cluster!.DestinationsState.AvailableDestinations;
        for (var i = 0; i < available.Count; i++)
        {
            if (available[i] != rejecting && !session.Failed.Contains(available[i]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// After a node rejected the message (<see cref="MllpAttemptStage.Rejected"/>): its connection, which answered as it
    /// should, goes back to the pool (not the sticky one any more: the next message picks again), the node is not marked
    /// unhealthy (a reject may be about this message alone), and the attempt ends as failed, so that the retry pipeline
    /// sends the message to another node.
    /// </summary>
    private async ValueTask<MllpAttemptResult> AfterRejectAsync(MllpSession session, MllpAttempt attempt)
    {
        var cluster = session.Cluster!;
        var destination = attempt.Destination!;
        attempt.Stage = MllpAttemptStage.NotStarted;
        if (attempt.Node is { } node)
        {
            attempt.Node = null;
            session.ClearSticky(cluster.ClusterId);
            await pool.ReturnAsync(node, session.Settings.PoolIdleTimeout);
        }

        Log.Rejected(logger, session.ConnectionId, session.Header.MessageControlId.GetLogString(), cluster.ClusterId, destination.DestinationId, MllpProxyMetrics.AckCodeName(attempt.Ack.Code), session.Attempts);
        session.Failed.Add(destination);
        session.Refusal = new MllpAttemptResult(MllpAttemptOutcome.Acknowledged, destination.DestinationId, attempt.Ack.Code);
        return new MllpAttemptResult(MllpAttemptOutcome.Failed, null, AcknowledgmentCode.None);
    }

    /// <summary>The attempt's exchange is over: its timer and the registration that stops the node's receive are disarmed.</summary>
    private static void Disarm(MllpSession session, MllpAttempt attempt)
    {
        attempt.StopReceiving.Dispose();
        session.StopAttemptTimeout();
    }

    /// <summary>
    /// After a failed attempt: its connection is discarded (a late ACK must never be paired with a later message); a
    /// reused connection the node had closed (idle timeout, restart) gets one more try on a new connection to the same
    /// node, not counted (null), once per node and message (a node failed over to after another node's free retry still
    /// gets its own); otherwise the attempt ends as failed, and the node is marked passively unhealthy unless
    /// <paramref name="budgetCut"/>: the wait that timed out was shortened to what was left of <c>DeliveryTimeout</c>,
    /// which says nothing about the node.
    /// </summary>
    private async ValueTask<MllpAttemptResult?> AfterFailureAsync(MllpSession session, DestinationState destination, MllpNodeConnection? node, string reason, bool reused, bool budgetCut, CancellationToken aborted)
    {
        var cluster = session.Cluster!;
        session.Attempt.Stage = MllpAttemptStage.NotStarted;
        if (node is not null)
        {
            session.Attempt.Node = null;
            session.ClearSticky(cluster.ClusterId);
            await pool.DiscardAsync(node);
        }

        if (aborted.IsCancellationRequested)
        {
            return new MllpAttemptResult(MllpAttemptOutcome.Exhausted, null, AcknowledgmentCode.None);
        }

        if (reused && !session.FreshRetried.Contains(destination))
        {
            session.FreshRetried.Add(destination);
            session.FreshRetryUsedNow = true;
            session.FreshRetryTo = destination;
            session.Attempts--;
            return null;
        }

        Log.AttemptFailed(logger, session.ConnectionId, session.Header.MessageControlId.GetLogString(), cluster.ClusterId, destination.DestinationId, session.Attempts, reason);
        session.Failed.Add(destination);
        if (!budgetCut)
        {
            MarkUnhealthy(cluster, destination);
        }
        return new MllpAttemptResult(MllpAttemptOutcome.Failed, null, AcknowledgmentCode.None);
    }

    /// <summary>The failure reason of an attempt whose timeout fired: the ACK timeout, or the inbound connection's abort.</summary>
    private static string TimedOut(MllpSession session, TimeSpan ackTimeout)
        => session.Aborted.IsCancellationRequested ? "the drain deadline passed" : $"no ACK within {ackTimeout.TotalSeconds:0.###} s";

    /// <summary>
    /// A pooled connection to <paramref name="destination"/>, which becomes the session's sticky one for the cluster (the
    /// previous sticky one goes back to the pool). Null with the reason, and whether it timed out, when connecting failed (within
    /// <paramref name="connectTimeout"/>: the ConnectTimeout, or less when the delivery budget ends sooner).
    /// </summary>
    private async ValueTask<(MllpNodeConnection? Node, string? Failure, bool TimedOut)> RentAsync(MllpSession session, ClusterState cluster, DestinationState destination, MllpRouteTable settings, TimeSpan connectTimeout, bool newConnection, bool reserved)
    {
        // A reservation (reserved) is the pool's once handed to it, whatever the outcome; given back on the way out before.
        var handed = false;
        try
        {
            if (session.TryGetSticky(cluster.ClusterId, out _, out var previous))
            {
                session.ClearSticky(cluster.ClusterId);
                await pool.ReturnAsync(previous, settings.PoolIdleTimeout);
            }

            var address = destination.Model.Config.Address;
            SslClientAuthenticationOptions? tls = null;
            string? tlsSettings = null;
            if (TcpAddress.TryParse(address, out var target) && target.Tls)
            {
                try
                {
                    tls = _nodeTls.ClientOptions(cluster.Model.Config, destination.Model.Config, target);
                    tlsSettings = NodeTls.ClientSettings(cluster.Model.Config, destination.Model.Config);
                }
                catch (InvalidOperationException ex)
                {
                    return (null, $"TLS settings: {ex.Message}", false);
                }
            }

            MllpNodeConnection node;
            try
            {
                handed = true;
                node = newConnection
                    ? await pool.ConnectAsync(address, settings.MaxFrameSize, connectTimeout, tls, tlsSettings, session.Aborted, reserved)
                    : await pool.RentAsync(address, settings.MaxFrameSize, connectTimeout, tls, tlsSettings, session.Aborted, reserved);
            }
            catch (SocketException ex)
            {
                return (null, $"connect failed: {ex.SocketErrorCode}", ex.SocketErrorCode == SocketError.TimedOut);
            }
            catch (Exception ex) when (ex is AuthenticationException or IOException)
            {
                return (null, $"TLS handshake: {ex.Message}", false);
            }
            catch (OperationCanceledException) when (session.Aborted.IsCancellationRequested)
            {
                return (null, "the drain deadline passed", false);
            }

            if (tls is not null)
            {
                _nodeTls.Observe(cluster.ClusterId, destination.DestinationId, node.RemoteCertificate);
            }

            node.Configured = (cluster.Model.Config, destination.Model.Config);
            session.SetSticky(cluster.ClusterId, destination.DestinationId, node);
            return (node, null, false);
        }
        finally
        {
            if (reserved && !handed)
            {
                pool.Unreserve(destination.Model.Config.Address);
            }
        }
    }

    /// <summary>
    /// The node of a free retry after a stale pooled connection, while it is available (protocols.md §3.7: order at the
    /// receiver); else the inbound connection's sticky node while it is available and has not failed this message
    /// (<paramref name="sticky"/> is then its connection); else the available node with the fewest rented connections
    /// per unit of its share (<c>Weight</c>, <c>SlowStart</c>: <see cref="DestinationWeights"/>), among those below their
    /// <c>MaxConcurrent</c> (<see cref="DestinationLimits"/>; counted by address, the place reserved at once:
    /// <see cref="MllpSession.Reservation"/>); once every primary failed the message, the cluster's backups that are up.
    /// </summary>
    private DestinationState? Pick(MllpSession session, ClusterState cluster, List<DestinationState> failed, out MllpNodeConnection? sticky)
    {
        var available = cluster.DestinationsState.AvailableDestinations;
        if (session.FreshRetryTo is { } again)
        {
            session.FreshRetryTo = null;
            for (var i = 0; i < available.Count; i++)
            {
                if (available[i] == again && !failed.Contains(again))
                {
                    sticky = null;
                    return again;
                }
            }
        }

        if (Sticky(session, cluster, failed, out sticky) is { } stickyDestination)
        {
            return stickyDestination;
        }

        List<DestinationState>? raced = null;
        while (true)
        {
            var best = LeastLoaded(cluster, available, failed, raced, out var primaryLeft);
            if (best is null && failed.Count > 0 && !primaryLeft)
            {
                // Every primary failed this message: the cluster's backups, as soon as they are up.
                var backups = new List<DestinationState>();
                AvailableDestinationsPolicies.AddBackups(cluster.Model.Config, cluster.DestinationsState.AllDestinations, backups, failed.Contains);
                best = LeastLoaded(cluster, backups, failed, raced, out _);
            }

            if (best is null || _limits.Max(best) is not (> 0 and var max))
            {
                return best;
            }

            // A limited node: its place is reserved now, so a pick made at the same moment cannot take it too.
            if (pool.TryReserve(best.Model.Config.Address, max))
            {
                session.Reservation = best.Model.Config.Address;
                return best;
            }

            _limits.Reached(cluster.Model.Config, best);
            (raced ??= []).Add(best);
        }
    }

    /// <summary>
    /// Among the candidates not failed and below their <c>MaxConcurrent</c>, the one the cluster's
    /// <c>LoadBalancingPolicy</c> picks: by default (and <c>LeastRequests</c>) the fewest rented connections per unit of its
    /// share, starting from a rotating place (ties spread); <c>FirstAlphabetical</c>, <c>RoundRobin</c>, <c>Random</c> and
    /// <c>PowerOfTwoChoices</c> as for DICOM associations (<see cref="WeightedPicker"/>, the load being the node's rented
    /// connections). <paramref name="primaryLeft"/>: a candidate that is not a backup has not failed this message (full or not).
    /// </summary>
    private DestinationState? LeastLoaded(ClusterState cluster, IReadOnlyList<DestinationState> candidates, List<DestinationState> failed, List<DestinationState>? raced, out bool primaryLeft)
    {
        primaryLeft = false;
        if (candidates.Count == 0)
        {
            return null;
        }

        var policy = cluster.Model.Config.LoadBalancingPolicy;
        var byPolicy = policy is not null && !string.Equals(policy, LoadBalancingPolicies.LeastRequests, StringComparison.OrdinalIgnoreCase);
        var eligible = byPolicy ? (s_eligible ??= []) : null;
        eligible?.Clear();
        DestinationState? best = null;
        var bestLoad = double.MaxValue;
        var start = (int)((uint)Interlocked.Increment(ref _rotation) % (uint)Math.Max(1, candidates.Count));
        for (var i = 0; i < candidates.Count; i++)
        {
            // A pick by policy reads the candidates in their own order (RoundRobin's rotation, FirstAlphabetical's ties).
            var destination = candidates[eligible is null ? (start + i) % candidates.Count : i];
            if (failed.Contains(destination))
            {
                continue;
            }

            primaryLeft |= !AvailableDestinationsPolicies.IsBackup(destination);
            if (raced?.Contains(destination) == true)
            {
                continue; // filled by a pick made at the same moment
            }

            var rented = pool.LoadOf(destination.Model.Config.Address);
            if (_limits.IsFull(cluster.Model.Config, destination, rented))
            {
                continue;
            }

            if (eligible is not null)
            {
                eligible.Add(destination);
                continue;
            }

            var load = rented / _weights.Of(cluster, destination);
            if (load < bestLoad)
            {
                best = destination;
                bestLoad = load;
            }
        }

        if (eligible is null || eligible.Count == 0)
        {
            return best;
        }

        try
        {
            return string.Equals(policy, LoadBalancingPolicies.FirstAlphabetical, StringComparison.OrdinalIgnoreCase)
                ? FirstAlphabetical(eligible)
                : _picker.Pick(policy!, cluster, eligible, LoadOfNode);
        }
        finally
        {
            eligible.Clear();
        }
    }

    /// <summary>The destination whose id comes first (YARP's <c>FirstAlphabetical</c>: ordinal, ignoring case).</summary>
    private static DestinationState FirstAlphabetical(List<DestinationState> eligible)
    {
        var first = eligible[0];
        for (var i = 1; i < eligible.Count; i++)
        {
            if (string.Compare(eligible[i].DestinationId, first.DestinationId, StringComparison.OrdinalIgnoreCase) < 0)
            {
                first = eligible[i];
            }
        }

        return first;
    }

    /// <summary>
    /// The inbound connection's sticky node when it is available, has not failed this message and its connection still
    /// goes where the node's configuration says (<paramref name="connection"/> is that connection), else null.
    /// </summary>
    private static DestinationState? Sticky(MllpSession session, ClusterState cluster, List<DestinationState> failed, out MllpNodeConnection? connection)
    {
        if (session.TryGetSticky(cluster.ClusterId, out var stickyId, out var sticky))
        {
            // Indexed, not foreach: this runs per message and an interface enumerator is an allocation.
            var available = cluster.DestinationsState.AvailableDestinations;
            for (var i = 0; i < available.Count; i++)
            {
                var destination = available[i];
                if (destination.DestinationId == stickyId && !failed.Contains(destination) && IsConfigured(sticky, cluster, destination))
                {
                    connection = sticky;
                    return destination;
                }
            }
        }

        connection = null;
        return null;
    }

    /// <summary>
    /// True when <paramref name="connection"/> goes to the address, with the TLS settings, that the destination's current
    /// configuration names: a reload may keep a destination's id and change either.
    /// </summary>
    private static bool IsConfigured(MllpNodeConnection connection, ClusterState cluster, DestinationState destination)
    {
        var clusterConfig = cluster.Model.Config;
        var config = destination.Model.Config;
        if (connection.Configured is (var configuredCluster, var configuredDestination)
            && ReferenceEquals(configuredCluster, clusterConfig) && ReferenceEquals(configuredDestination, config))
        {
            // Unchanged since last checked: the per-message case, no comparison.
            return true;
        }

        if (!string.Equals(connection.Address, config.Address, StringComparison.OrdinalIgnoreCase)
            || (connection.IsTls && connection.TlsSettings != NodeTls.ClientSettings(clusterConfig, config)))
        {
            return false;
        }

        connection.Configured = (clusterConfig, config);
        return true;
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

        [LoggerMessage(EventId = 4105, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: {Cluster}/{Destination} refused message {ControlId} with {AckCode} (attempt {Attempt}); sent to another node (Mllp.RetryOnReject).")]
        public static partial void Rejected(ILogger logger, string connectionId, string controlId, string cluster, string destination, string ackCode, int attempt);

        [LoggerMessage(EventId = 4103, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: node {Destination} sent {Count} frame(s) while no message was in flight (late application ACK?); discarded, never paired with the next message.")]
        public static partial void UnsolicitedDiscarded(ILogger logger, string connectionId, string destination, int count);
    }
}
