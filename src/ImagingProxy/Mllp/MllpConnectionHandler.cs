using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using ImagingProxy.Hosting;
using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Mllp;

/// <summary>
/// The HL7 v2 over MLLP proxy for one inbound connection: reads frames, routes each message on its MSH header, relays it
/// to one node of the route's cluster and relays that node's acknowledgement back, one message at a time (HL7 original
/// mode; protocols.md §3.1, §3.7).
/// </summary>
/// <remarks>
/// <para>
/// An AA/CA reaches the sender only when a node sent it; when no node takes the message ImagingProxy answers AR
/// (original mode) or CR (enhanced mode) itself. Nothing that is not a whole frame with a readable MSH is forwarded.
/// </para>
/// <para>
/// Draining: when Kestrel asks the connection to close (<see cref="IConnectionLifetimeNotificationFeature"/>, else
/// <see cref="IHostApplicationLifetime.ApplicationStopping"/>), a connection with no message arriving or in flight
/// closes at once; otherwise the message is finished (received, forwarded, its ACK relayed) and then the connection
/// closes. At the drain deadline (<see cref="ConnectionDrain.Deadline"/>: shortly before Kestrel aborts the transports at
/// <c>HostOptions.ShutdownTimeout</c>, the same deadline as for DICOM associations) the delivery in flight stops waiting
/// and the close is logged and counted as <c>drain_deadline</c>: the sender got no ACK and sends again. An optional idle
/// timeout closes connections with no byte received for that long.
/// </para>
/// <para>
/// The sender closing its side (FIN) ends nothing by itself: whole frames that arrived before it are forwarded and
/// answered (a sender that half-closes still reads its ACKs), bytes of a frame left unfinished are logged and counted as
/// <c>incomplete_frame</c>, then the connection closes. Kestrel signals <c>ConnectionClosed</c> on a FIN as on a reset,
/// so the handler goes by its input instead: a reset or abort fails the read, a FIN completes it.
/// </para>
/// </remarks>
internal sealed partial class MllpConnectionHandler(
    MllpProxyConfiguration configuration,
    IProxyStateLookup proxyState,
    MllpForwarder forwarder,
    MllpNodePool pool,
    MllpProxyMetrics metrics,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ConnectionDrain drain,
    ILogger<MllpConnectionHandler> logger) : ConnectionHandler
{
    /// <summary>Connections open per listener (accept to close), for the listener's <c>MaxConnections</c>.</summary>
    private readonly ListenerConnectionCounts _open = new();

    /// <summary>Connections open on <paramref name="listener"/> now.</summary>
    internal int OpenOn(string listener) => _open.OpenOn(listener);

    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        var listener = connection.Features.Get<IProxyListenerFeature>()?.Name ?? string.Empty;

        // A sender that died without a FIN or RST is found by TCP (IdleTimeout is off by default).
        TcpKeepAlive.Enable(connection);
        var initial = configuration.Current;
        var frames = new MllpFrameReader(initial.MaxFrameSize);
        var headers = new Hl7HeaderReader();
        var input = connection.Transport.Input;
        using var replies = MllpReplyWriter.For(connection, time);
        var closeRequested = connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.ConnectionClosedRequested ?? lifetime.ApplicationStopping;
        var end = MllpSessionEnd.ClientClosed;
        var insideFrame = false;

        // The bytes left unread after the last read: a read whose buffer is longer brought bytes.
        long unread = 0;

        // MaxConnections: a connection over it is not admitted (it holds no slot); its first message is answered with a
        // NAK and it is closed, or closed after AckTimeout if it sends nothing.
        var open = _open.For(listener);
        int? overLimit = null;
        if (initial.MaxConnections.TryGetValue(listener, out var max))
        {
            overLimit = open.TryAdd(max) ? null : max;
        }
        else
        {
            open.Add();
        }

        // Over the limit, that time is a deadline from the accept, not re-armed by each read: a sender trickling bytes
        // would otherwise keep any number of connections the limit does not count open.
        var idleTimeout = overLimit is null ? initial.IdleTimeout
            : initial.IdleTimeout is { } idle && idle < initial.AckTimeout ? idle : initial.AckTimeout;

        // Inside a frame the wait for the next byte is AckTimeout at most, IdleTimeout or not: a sender that stopped in
        // the middle of a message (a frame up to MaxFrameSize held in memory, per connection) is not waited for forever.
        var frameTimeout = idleTimeout is { } limit && limit < initial.AckTimeout ? limit : initial.AckTimeout;
        using var signals = new Signals(input, time, idleTimeout, frameTimeout, deadline: overLimit is not null) { Slot = overLimit is null ? open : null };
        await using var session = new MllpSession(connection.ConnectionId, listener, pool, time, drain.Deadline) { OverLimit = overLimit };
        using var drainRegistration = closeRequested.UnsafeRegister(static s => ((Signals)s!).RequestDrain(), signals);

        // The client closed its side or reset: it sends no more, so its MaxConnections slot is free for its reconnect even
        // while the delivery in flight finishes (up to MaxAttempts x (ConnectTimeout + AckTimeout)).
        using var closedRegistration = connection.ConnectionClosed.UnsafeRegister(static s => ((Signals)s!).ReleaseSlot(), signals);
        metrics.ConnectionOpened(listener);
        Log.ConnectionOpened(logger, connection.ConnectionId, listener);
        try
        {
            while (end == MllpSessionEnd.ClientClosed)
            {
                if (signals.DrainRequested && !insideFrame && !HasUnreadBytes(input))
                {
                    end = MllpSessionEnd.Shutdown;
                    break;
                }

                signals.ArmIdle(insideFrame);
                var result = await input.ReadAsync();
                signals.DisarmIdle();
                var buffer = result.Buffer;
                MllpReadResult read;
                while ((read = frames.TryReadFrame(ref buffer, out var frame)) != MllpReadResult.NeedMoreData)
                {
                    var started = time.GetTimestamp();
                    MllpSessionEnd outcome;
                    if (read == MllpReadResult.Frame)
                    {
                        // A message's delivery is awaited here, down to the node's receive, not in methods of its own:
                        // while a node's ACK is awaited, each async level above that await costs a suspension and a
                        // resumption per message (1-2 µs of CPU each in paired runs, bench/ab.sh). Admit, the forwarder's
                        // steps and AnswerAsync complete synchronously; ContinueAsync and FinishAsync only after a failure.
                        var admission = Admit(session, headers, frame);
                        using var activity = admission.Activity;
                        if (admission.Disposition != Disposition.Forward)
                        {
                            outcome = admission.Disposition == Disposition.Nak ? await RejectAsync(session, admission, replies, started) : MllpSessionEnd.MalformedFrame;
                        }
                        else
                        {
                            MllpAttemptResult first;
                            try
                            {
                                var step = forwarder.StartFirstAttempt(session, admission.Cluster!, frame, admission.Settings!, out var receive);
                                while (step == MllpAttemptStep.AwaitAck)
                                {
                                    int received;
                                    try
                                    {
                                        received = await receive;
                                    }
                                    catch (Exception ex)
                                    {
                                        step = forwarder.ReceiveFailed(session, ex);
                                        break;
                                    }

                                    step = forwarder.Received(session, received, out receive);
                                }

                                first = step == MllpAttemptStep.Done ? session.Attempt.Result : await forwarder.ContinueAsync(session);
                            }
                            catch (Exception ex)
                            {
                                // A fault of ours in the forwarder's steps: answered with AR/CR like any other.
                                first = await forwarder.FaultAsync(session, ex);
                            }

                            outcome = await AnswerAsync(session, admission, await forwarder.FinishAsync(session, first), replies, started);
                        }
                    }
                    else
                    {
                        outcome = read == MllpReadResult.FrameTooLarge
                            ? await HandleOversizeAsync(session, headers, frame, frames.MaxFrameSize, replies, started)
                            : OutsideFrame(session, frame);
                    }

                    if (outcome != MllpSessionEnd.ClientClosed)
                    {
                        end = outcome;
                        break;
                    }

                    if (signals.DrainRequested && read != MllpReadResult.BytesOutsideFrame)
                    {
                        // The message in flight is answered; frames the sender sent ahead get no ACK and are sent again.
                        end = MllpSessionEnd.Shutdown;
                        break;
                    }
                }

                insideFrame = frames.IsInsideFrame(buffer);
                var broughtBytes = result.Buffer.Length > unread;
                unread = buffer.Length;
                input.AdvanceTo(buffer.Start, buffer.End);
                if (end != MllpSessionEnd.ClientClosed)
                {
                    break;
                }

                if (result.IsCompleted)
                {
                    if (frames.ClassifyEndOfStream(buffer) == MllpReadResult.IncompleteFrameAtEndOfStream)
                    {
                        metrics.FrameRejected(listener, MllpRejectReason.IncompleteFrame);
                        Log.IncompleteFrame(logger, connection.ConnectionId, buffer.Length);
                    }

                    break;
                }

                if (result.IsCanceled && signals.TakeIdleExpired(broughtBytes))
                {
                    end = MllpSessionEnd.IdleTimeout;
                    Log.IdleTimeout(logger, connection.ConnectionId, signals.ArmedTimeout, insideFrame);
                }
            }
        }
        catch (Exception ex) when (ex is ConnectionResetException or ConnectionAbortedException or IOException or OperationCanceledException)
        {
            end = MllpSessionEnd.ClientAborted;
        }
        finally
        {
            if (end == MllpSessionEnd.ClientAborted && drain.Deadline.IsCancellationRequested)
            {
                end = MllpSessionEnd.DrainDeadline;
                Log.DrainDeadline(logger, connection.ConnectionId, insideFrame ? "a message was still arriving" : "a message was in flight");
            }

            signals.ReleaseSlot();

            metrics.ConnectionClosed(listener, end);
            Log.ConnectionClosed(logger, connection.ConnectionId, end);
        }
    }

    /// <summary>
    /// Decides what becomes of one frame: forwarded along its route (with the route's cluster), answered with
    /// ImagingProxy's own NAK (no route, no such cluster, MSH-9 empty, over the listener's MaxConnections), or the
    /// connection closed (no MSH-10 to answer on, protocols.md §3.7).
    /// </summary>
    private Admission Admit(MllpSession session, Hl7HeaderReader headers, ReadOnlySequence<byte> message)
    {
        var status = headers.TryRead(message, out var header);
        session.Header = header;
        if (session.OverLimit is { } limit && Answerable(status, header))
        {
            // Over the listener's MaxConnections: its first message, whatever else is wrong with it, is answered with the
            // limit's NAK, not forwarded; the connection closes (the sender reconnects later).
            return OverLimit(session, limit);
        }

        if (status == Hl7ReadStatus.BadDelimiters && !header.MessageControlId.IsEmpty)
        {
            return Admission.Nak(null, MllpRejectReason.BadEncodingCharacters, Hl7ErrorCode.DataTypeError, "MSH-2 (encoding characters) is not valid; message not forwarded.");
        }

        if (status == Hl7ReadStatus.MissingMessageType)
        {
            return Admission.Nak(null, MllpRejectReason.MissingMessageType, Hl7ErrorCode.RequiredFieldMissing, "MSH-9 (message type) is empty; message not forwarded.");
        }

        if (status != Hl7ReadStatus.Success)
        {
            metrics.FrameRejected(session.Listener, MllpRejectReason.UnparseableHeader);
            Log.UnparseableFrame(logger, session.ConnectionId, status, message.Length);
            return new Admission(Disposition.Close, null);
        }

        var settings = configuration.Current;
        var route = settings.Match(header, session.Listener);
        var messageType = metrics.MessageTypeLabel(header, routed: route is not null);
        var activity = ImagingProxyTelemetry.ActivitySource.HasListeners() ? StartActivity(messageType) : null;
        if (route is null)
        {
            return Admission.Nak(activity, MllpRejectReason.NoRoute, Hl7ErrorCode.UnsupportedMessageType, $"No route for message type {header.MessageType.GetLogString()}; message not forwarded.");
        }

        activity?.SetTag("imagingproxy.route", route.Id);
        if (!proxyState.TryGetCluster(route.Cluster, out var cluster))
        {
            activity?.SetTag("imagingproxy.cluster", route.Cluster);
            return Admission.Nak(activity, MllpRejectReason.UnknownCluster, Hl7ErrorCode.ApplicationInternalError, $"Cluster '{route.Cluster}' is not configured; message not delivered, retry later.");
        }

        // The cluster's own name (YARP finds it whatever the route's case), as in the metrics and logs.
        activity?.SetTag("imagingproxy.cluster", cluster.ClusterId);

        return new Admission(Disposition.Forward, activity) { Route = route, Cluster = cluster, Settings = settings, MessageType = messageType };
    }

    /// <summary>A header ImagingProxy can answer with its own NAK: MSH-10 readable (with the usual MSH-2 when its own is not usable).</summary>
    private static bool Answerable(Hl7ReadStatus status, in Hl7Header header)
        => status is Hl7ReadStatus.Success or Hl7ReadStatus.MissingMessageType || (status == Hl7ReadStatus.BadDelimiters && !header.MessageControlId.IsEmpty);

    /// <summary>The answer to the first message of a connection over its listener's <c>MaxConnections</c>: AR/CR, then the close.</summary>
    private static Admission OverLimit(MllpSession session, int limit)
        => Admission.Nak(null, MllpRejectReason.ListenerLimit, Hl7ErrorCode.ApplicationInternalError, $"Listener '{session.Listener}' already has its {limit} connection(s) open; message not delivered, send it again later.") with { AfterNak = MllpSessionEnd.ListenerLimit };

    /// <summary>Answers a forwarded message: the node's ACK relayed unchanged, or ImagingProxy's NAK when no node took it.</summary>
    private async ValueTask<MllpSessionEnd> AnswerAsync(MllpSession session, Admission admission, MllpDelivery delivery, MllpReplyWriter replies, long started)
    {
        var activity = admission.Activity;
        var cluster = admission.Cluster!;
        if (session.Header.IsAcceptAcknowledgmentNever && delivery.Outcome is not MllpDeliveryOutcome.Aborted)
        {
            return NotAnswered(session, admission, delivery);
        }

        switch (delivery.Outcome)
        {
            case MllpDeliveryOutcome.Acknowledged:
                MllpFrameWriter.Write(replies.Writer, new ReadOnlySequence<byte>(session.Ack.WrittenMemory));
                var sent = await replies.SendAsync();
                metrics.Relayed(session.Listener, admission.Route!.Id, cluster.ClusterId, delivery.DestinationId, admission.MessageType, delivery.AckCode, time.GetElapsedTime(started));
                if (activity is not null)
                {
                    activity.SetTag("imagingproxy.destination", delivery.DestinationId);
                    activity.SetTag("hl7.ack_code", MllpProxyMetrics.AckCodeName(delivery.AckCode));
                }

                return AfterReply(session, replies, sent);
            case MllpDeliveryOutcome.Aborted:
                Log.AbortedInFlight(logger, session.ConnectionId, session.Header.MessageControlId.GetLogString(), delivery.Attempts);
                activity?.SetStatus(ActivityStatusCode.Error, "connection aborted");
                return MllpSessionEnd.ClientAborted;
            case MllpDeliveryOutcome.Faulted:
                return await NakAsync(session, replies, MllpRejectReason.InternalError, Hl7ErrorCode.ApplicationInternalError, "ImagingProxy failed while delivering the message (a node may already have it); send it again.", started, activity);
            case MllpDeliveryOutcome.NoDestination:
                return await NakAsync(session, replies, MllpRejectReason.NoDestination, Hl7ErrorCode.ApplicationInternalError, $"No healthy node in cluster '{cluster.ClusterId}' (or every node at its MaxConcurrent); message not delivered, retry later.", started, activity);
            default:
                return await NakAsync(session, replies, MllpRejectReason.Undelivered, Hl7ErrorCode.ApplicationInternalError, $"No node of cluster '{cluster.ClusterId}' acknowledged the message after {delivery.Attempts} attempt(s); message not delivered, retry later.", started, activity);
        }
    }

    /// <summary>
    /// A message whose MSH-15 is NE: the sender asked for no accept acknowledgment, so it gets none, neither a node's nor
    /// ImagingProxy's NAK when no node took the message (that is logged and counted as not forwarded).
    /// </summary>
    private MllpSessionEnd NotAnswered(MllpSession session, Admission admission, MllpDelivery delivery)
    {
        var activity = admission.Activity;
        var cluster = admission.Cluster!;
        if (delivery.Outcome == MllpDeliveryOutcome.SentWithoutAck)
        {
            metrics.SentWithoutAck(session.Listener, admission.Route!.Id, cluster.ClusterId, delivery.DestinationId, admission.MessageType);
            activity?.SetTag("imagingproxy.destination", delivery.DestinationId);
            activity?.SetTag("hl7.ack_code", MllpProxyMetrics.NoAckRequested);
            return MllpSessionEnd.ClientClosed;
        }

        var reason = delivery.Outcome switch
        {
            MllpDeliveryOutcome.NoDestination => MllpRejectReason.NoDestination,
            MllpDeliveryOutcome.Faulted => MllpRejectReason.InternalError,
            _ => MllpRejectReason.Undelivered,
        };
        metrics.FrameRejected(session.Listener, reason);
        Log.NotDeliveredWithoutAck(logger, session.ConnectionId, session.Header.MessageControlId.GetLogString(), cluster.ClusterId, MllpRejectReasons.Name(reason), delivery.Attempts);
        activity?.SetStatus(ActivityStatusCode.Error, MllpRejectReasons.Name(reason));
        return MllpSessionEnd.ClientClosed;
    }

    /// <summary>Answers a message <see cref="Admit"/> did not forward with ImagingProxy's NAK.</summary>
    private async ValueTask<MllpSessionEnd> RejectAsync(MllpSession session, Admission admission, MllpReplyWriter replies, long started)
    {
        var answered = await NakAsync(session, replies, admission.Reason, admission.Error, admission.Text!, started, admission.Activity);
        return answered == MllpSessionEnd.ClientClosed ? admission.AfterNak : answered;
    }

    /// <summary>The <c>hl7.message</c> activity: type, route, cluster, destination and ACK code only (never control ids or content).</summary>
    private static Activity? StartActivity(string messageType)
    {
        var activity = ImagingProxyTelemetry.ActivitySource.StartActivity("hl7.message", ActivityKind.Server);
        activity?.SetTag("hl7.message_type", messageType);
        return activity;
    }

    private async ValueTask<MllpSessionEnd> HandleOversizeAsync(MllpSession session, Hl7HeaderReader headers, ReadOnlySequence<byte> seen, int maxFrameSize, MllpReplyWriter replies, long started)
    {
        // The bytes seen so far start with <SB> and, in practice, the whole MSH: answer on its MSH-10 if it can be read.
        var payload = !seen.IsEmpty && seen.FirstSpan.Length > 0 && seen.FirstSpan[0] == MllpConstants.StartBlock ? seen.Slice(1) : seen;
        var status = headers.TryRead(payload, out var header);
        session.Header = header;
        if (Answerable(status, header))
        {
            return session.OverLimit is { } limit
                ? await RejectAsync(session, OverLimit(session, limit), replies, started)
                : await NakAsync(session, replies, MllpRejectReason.FrameTooLarge, Hl7ErrorCode.ValueTooLong, $"Message larger than the maximum frame size of {maxFrameSize} bytes; not forwarded.", started);
        }

        metrics.FrameRejected(session.Listener, MllpRejectReason.FrameTooLarge);
        Log.OversizeUnreadable(logger, session.ConnectionId, maxFrameSize);
        return MllpSessionEnd.MalformedFrame;
    }

    private MllpSessionEnd OutsideFrame(MllpSession session, ReadOnlySequence<byte> bytes)
    {
        metrics.FrameRejected(session.Listener, MllpRejectReason.BytesOutsideFrame);
        Log.BytesOutsideFrame(logger, session.ConnectionId, bytes.Length);
        return MllpSessionEnd.ClientClosed;
    }

    /// <summary>ImagingProxy's own AR/CR NAK for the message whose header is <see cref="MllpSession.Header"/>.</summary>
    private async ValueTask<MllpSessionEnd> NakAsync(MllpSession session, MllpReplyWriter replies, MllpRejectReason reason, Hl7ErrorCode error, string text, long started, Activity? activity = null)
    {
        var header = session.Header;
        if (activity is not null)
        {
            activity.SetTag("hl7.ack_code", header.IsEnhancedAcknowledgmentMode ? "CR" : "AR");
            activity.SetStatus(ActivityStatusCode.Error, MllpRejectReasons.Name(reason));
        }

        var controlId = header.MessageControlId.GetLogString();
        Log.Nak(logger, session.ConnectionId, controlId, MllpRejectReasons.Name(reason), text);
        if (reason is MllpRejectReason.FrameTooLarge or MllpRejectReason.MissingMessageType or MllpRejectReason.BadEncodingCharacters)
        {
            metrics.FrameRejected(session.Listener, reason);
        }

        MllpNak.WriteFrame(replies.Writer, header, text, error, time.GetUtcNow());
        var sent = await replies.SendAsync();
        metrics.Nak(session.Listener, reason, time.GetElapsedTime(started));
        return AfterReply(session, replies, sent);
    }

    /// <summary>How the connection goes on after a reply: on when it was sent, else ended (the client is gone, or read nothing in time).</summary>
    private MllpSessionEnd AfterReply(MllpSession session, MllpReplyWriter replies, bool sent)
    {
        if (sent)
        {
            return MllpSessionEnd.ClientClosed;
        }

        if (replies.TimedOut)
        {
            Log.ReplyTimeout(logger, session.ConnectionId, session.Header.MessageControlId.GetLogString(), MllpReplyWriter.SendTimeout);
            return MllpSessionEnd.ReplyTimeout;
        }

        return MllpSessionEnd.ClientAborted;
    }

    /// <summary>
    /// True when bytes already arrived that the loop has not looked at yet: a message that started arriving before the
    /// close request is still read, forwarded and answered. Consumes nothing.
    /// </summary>
    private static bool HasUnreadBytes(PipeReader input)
    {
        if (!input.TryRead(out var result))
        {
            return false;
        }

        input.AdvanceTo(result.Buffer.Start);
        return !result.Buffer.IsEmpty;
    }

    /// <summary>What becomes of one frame (<see cref="Admit"/>).</summary>
    private enum Disposition
    {
        Forward,
        Nak,
        Close,
    }

    /// <summary>The decision on one frame, with what forwarding it or answering it needs.</summary>
    private readonly record struct Admission(Disposition Disposition, Activity? Activity)
    {
        public MllpRoute? Route { get; init; }

        public ClusterState? Cluster { get; init; }

        public MllpRouteTable? Settings { get; init; }

        public string MessageType { get; init; } = string.Empty;

        public MllpRejectReason Reason { get; init; }

        public Hl7ErrorCode Error { get; init; }

        public string? Text { get; init; }

        /// <summary>How the connection goes on once the NAK is sent (it closes after a <see cref="MllpRejectReason.ListenerLimit"/> NAK).</summary>
        public MllpSessionEnd AfterNak { get; init; } = MllpSessionEnd.ClientClosed;

        public static Admission Nak(Activity? activity, MllpRejectReason reason, Hl7ErrorCode error, string text)
            => new(Disposition.Nak, activity) { Reason = reason, Error = error, Text = text };
    }

    /// <summary>Per-connection flags set from other threads (drain request, idle timer); each wakes the pending read.</summary>
    internal sealed class Signals : IDisposable
    {
        private readonly PipeReader _input;
        private readonly TimeSpan? _idleTimeout;
        private readonly TimeSpan _frameTimeout;
        private readonly ITimer _idleTimer;
        private readonly TimeProvider _time;
        private readonly bool _deadline;
        private readonly Lock _timerLock = new();
        private bool _armed;
        private volatile bool _drainRequested;

        /// <summary>When the read of now times out (<see cref="TimeProvider.GetTimestamp"/>); <see cref="long.MaxValue"/>: it is not timed.</summary>
        private long _dueAt = long.MaxValue;

        /// <summary>When the timer is set to fire (under <see cref="_timerLock"/>); <see cref="long.MaxValue"/>: not set.</summary>
        private long _firesAt = long.MaxValue;

        /// <summary>The due time the timer found passed (0: none since the last <see cref="TakeIdleExpired"/>).</summary>
        private long _expiredDue;

        /// <summary>The due time of the read that ended last (<see cref="DisarmIdle"/>).</summary>
        private long _endedReadDue = long.MaxValue;

        /// <param name="input">The connection's input, whose pending read each signal wakes.</param>
        /// <param name="time">The time provider of the idle timer.</param>
        /// <param name="idleTimeout">How long a read may wait for a byte; null: no limit.</param>
        /// <param name="frameTimeout">How long a read may wait for a byte while a frame has begun (at most <paramref name="idleTimeout"/>).</param>
        /// <param name="deadline">The timeout counts from the first read, not from each (a connection over MaxConnections).</param>
        public Signals(PipeReader input, TimeProvider time, TimeSpan? idleTimeout, TimeSpan frameTimeout, bool deadline = false)
        {
            _input = input;
            _idleTimeout = idleTimeout;
            _frameTimeout = frameTimeout;
            _deadline = deadline;
            _time = time;
            _idleTimer = time.CreateTimer(static s => ((Signals)s!).TimerFired(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }

        private int _slotReleased;

        public bool DrainRequested => _drainRequested;

        /// <summary>The listener count this connection holds a slot of (null when it was over MaxConnections).</summary>
        public ListenerConnectionCounts.Count? Slot { get; init; }

        /// <summary>Gives the connection's slot back, once.</summary>
        public void ReleaseSlot()
        {
            if (Slot is { } slot && Interlocked.Exchange(ref _slotReleased, 1) == 0)
            {
                slot.Remove();
            }
        }

        public void RequestDrain()
        {
            _drainRequested = true;
            _input.CancelPendingRead();
        }

        /// <summary>The wait the timer was last armed for (the idle line names it).</summary>
        public TimeSpan ArmedTimeout { get; private set; }

        /// <summary>
        /// Times the next read: the idle timeout, or the frame timeout while a frame has begun (none: not timed). Per read
        /// this only writes the read's due time; the timer is moved (a lock and a timer call) only when it would fire
        /// after that time, which is once per frame at most: when it fires before (an earlier read's due time), it
        /// sets itself again for the time left (<see cref="TimerFired"/>).
        /// </summary>
        public void ArmIdle(bool insideFrame)
        {
            if (_deadline && _armed)
            {
                return;
            }

            var timeout = insideFrame && !_deadline ? _frameTimeout : _idleTimeout;
            if (timeout is not { } due)
            {
                Volatile.Write(ref _dueAt, long.MaxValue);
                return;
            }

            _armed = true;
            ArmedTimeout = due;
            var dueAt = _time.GetTimestamp() + ToTimestampTicks(due);

            // A full fence between writing the due time and reading when the timer fires (TimerFired does the converse):
            // either this sees the timer unset and sets it, or the firing sees this due time and sets itself again.
            Interlocked.Exchange(ref _dueAt, dueAt);
            if (dueAt < Volatile.Read(ref _firesAt))
            {
                SetTimer(dueAt);
            }
        }

        /// <summary>
        /// The read ended: it is not timed any more (a deadline still is) and its due time is kept for
        /// <see cref="TakeIdleExpired"/>. No timer call: a firing finds nothing due.
        /// </summary>
        public void DisarmIdle()
        {
            _endedReadDue = _deadline ? Volatile.Read(ref _dueAt) : Interlocked.Exchange(ref _dueAt, long.MaxValue);
        }

        /// <summary>
        /// True (once) when the read that just ended was cut short by its own timeout. Not when the timer found an earlier
        /// read's due time passed as that read completed with bytes (its cancellation then ends the next read at once):
        /// the due time that expired is not the one of now. Nor when the read brought bytes (<paramref name="readBroughtBytes"/>):
        /// they arrived before the cancellation reached the reader (its continuation ran late), the sender is not idle;
        /// only a deadline (over MaxConnections) counts whatever came.
        /// </summary>
        public bool TakeIdleExpired(bool readBroughtBytes = false)
        {
            var expired = Interlocked.Exchange(ref _expiredDue, 0);
            return expired != 0 && expired == _endedReadDue && (_deadline || !readBroughtBytes);
        }

        public void Dispose() => _idleTimer.Dispose();

        private void SetTimer(long dueAt)
        {
            lock (_timerLock)
            {
                if (dueAt >= _firesAt)
                {
                    return;
                }

                _firesAt = dueAt;
                var left = dueAt - _time.GetTimestamp();
                try
                {
                    _idleTimer.Change(left > 0 ? ToTimeSpan(left) : TimeSpan.Zero, Timeout.InfiniteTimeSpan);
                }
                catch (ObjectDisposedException)
                {
                    // The connection ended meanwhile.
                }
            }
        }

        private void TimerFired()
        {
            lock (_timerLock)
            {
                _firesAt = long.MaxValue;
            }

            Interlocked.MemoryBarrier(); // see ArmIdle
            var dueAt = Volatile.Read(ref _dueAt);
            if (dueAt == long.MaxValue)
            {
                return; // no read is timed now (the timed one ended): nothing to do until the next arming
            }

            if (dueAt > _time.GetTimestamp())
            {
                SetTimer(dueAt); // set for an earlier read's due time (or early by the timer's coarser clock)
                return;
            }

            Volatile.Write(ref _expiredDue, dueAt);
            _input.CancelPendingRead();
        }

        private long ToTimestampTicks(TimeSpan span) => (long)Math.Ceiling(span.Ticks * ((double)_time.TimestampFrequency / TimeSpan.TicksPerSecond));

        private TimeSpan ToTimeSpan(long timestampTicks) => TimeSpan.FromTicks((long)Math.Ceiling(timestampTicks * ((double)TimeSpan.TicksPerSecond / _time.TimestampFrequency)));
    }
}
