using System.Buffers;
using System.IO.Pipelines;
using ImagingProxy.Hosting;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;

namespace ImagingProxy.Mllp;

/// <summary>
/// The HL7 v2 over MLLP proxy for one inbound connection: reads frames, routes each message on its MSH header, relays it
/// to one node of the route's cluster and relays that node's acknowledgement back, one message at a time (HL7 original
/// mode; protocols.md §3.1, §3.7).
/// </summary>
/// <remarks>
/// An AA/CA reaches the sender only when a node sent it; when no node takes the message ImagingProxy answers AR
/// (original mode) or CR (enhanced mode) itself. Nothing that is not a whole frame with a readable MSH is forwarded.
/// On shutdown the message in flight is finished, then the connection closes.
/// </remarks>
internal sealed partial class MllpConnectionHandler(
    MllpProxyConfiguration configuration,
    IProxyStateLookup proxyState,
    MllpForwarder forwarder,
    MllpNodePool pool,
    MllpProxyMetrics metrics,
    TimeProvider time,
    IHostApplicationLifetime lifetime,
    ILogger<MllpConnectionHandler> logger) : ConnectionHandler
{
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        var listener = connection.Features.Get<IProxyListenerFeature>()?.Name ?? string.Empty;
        var frames = new MllpFrameReader(configuration.Current.MaxFrameSize);
        var headers = new Hl7HeaderReader();
        var input = connection.Transport.Input;
        var output = connection.Transport.Output;
        var stopping = lifetime.ApplicationStopping;
        var end = MllpSessionEnd.ClientClosed;
        await using var session = new MllpSession(connection.ConnectionId, listener, pool);
        metrics.ConnectionOpened(listener);
        Log.ConnectionOpened(logger, connection.ConnectionId, listener);
        try
        {
            while (end == MllpSessionEnd.ClientClosed)
            {
                ReadResult result;
                try
                {
                    result = await input.ReadAsync(stopping);
                }
                catch (OperationCanceledException) when (stopping.IsCancellationRequested)
                {
                    end = MllpSessionEnd.Shutdown;
                    break;
                }

                var buffer = result.Buffer;
                MllpReadResult read;
                while ((read = frames.TryReadFrame(ref buffer, out var frame)) != MllpReadResult.NeedMoreData)
                {
                    var started = time.GetTimestamp();
                    var outcome = read switch
                    {
                        MllpReadResult.Frame => await HandleFrameAsync(session, headers, frame, output, started),
                        MllpReadResult.FrameTooLarge => await HandleOversizeAsync(session, headers, frame, frames.MaxFrameSize, output, started),
                        _ => OutsideFrame(session, frame),
                    };
                    if (outcome != MllpSessionEnd.ClientClosed)
                    {
                        end = outcome;
                        break;
                    }

                    if (stopping.IsCancellationRequested)
                    {
                        end = MllpSessionEnd.Shutdown;
                        break;
                    }
                }

                input.AdvanceTo(buffer.Start, buffer.End);
                if (end == MllpSessionEnd.ClientClosed && (result.IsCompleted || result.IsCanceled))
                {
                    if (frames.ClassifyEndOfStream(buffer) == MllpReadResult.IncompleteFrameAtEndOfStream)
                    {
                        metrics.FrameRejected(listener, MllpRejectReason.IncompleteFrame);
                        Log.IncompleteFrame(logger, connection.ConnectionId, buffer.Length);
                    }

                    break;
                }
            }
        }
        catch (Exception ex) when (ex is ConnectionResetException or ConnectionAbortedException or IOException)
        {
            end = MllpSessionEnd.ClientAborted;
        }
        finally
        {
            metrics.ConnectionClosed(listener);
            Log.ConnectionClosed(logger, connection.ConnectionId, end);
        }
    }

    private async ValueTask<MllpSessionEnd> HandleFrameAsync(MllpSession session, Hl7HeaderReader headers, ReadOnlySequence<byte> message, PipeWriter output, long started)
    {
        var status = headers.TryRead(message, out var header);
        if (status == Hl7ReadStatus.MissingMessageType)
        {
            return await NakAsync(session, header, output, MllpRejectReason.MissingMessageType, Hl7ErrorCode.RequiredFieldMissing, "MSH-9 (message type) is empty; message not forwarded.", started);
        }

        if (status != Hl7ReadStatus.Success)
        {
            // No MSH-10 to answer on (protocols.md §3.7): close.
            metrics.FrameRejected(session.Listener, MllpRejectReason.UnparseableHeader);
            Log.UnparseableFrame(logger, session.ConnectionId, status, message.Length);
            return MllpSessionEnd.MalformedFrame;
        }

        var settings = configuration.Current;
        var route = settings.Match(header, session.Listener);
        if (route is null)
        {
            return await NakAsync(session, header, output, MllpRejectReason.NoRoute, Hl7ErrorCode.UnsupportedMessageType, $"No route for message type {header.MessageType.GetString()}; message not forwarded.", started);
        }

        if (!proxyState.TryGetCluster(route.Cluster, out var cluster))
        {
            return await NakAsync(session, header, output, MllpRejectReason.UnknownCluster, Hl7ErrorCode.ApplicationInternalError, $"Cluster '{route.Cluster}' is not configured; message not delivered, retry later.", started);
        }

        var delivery = await forwarder.DeliverAsync(session, cluster, message, header, settings);
        switch (delivery.Outcome)
        {
            case MllpDeliveryOutcome.Acknowledged:
                MllpFrameWriter.Write(output, new ReadOnlySequence<byte>(session.Ack.WrittenMemory));
                var flush = await output.FlushAsync();
                metrics.Relayed(session.Listener, route.Id, cluster.ClusterId, delivery.DestinationId, MessageTypeTag(header), delivery.AckCode, time.GetElapsedTime(started));
                return flush.IsCompleted ? MllpSessionEnd.ClientAborted : MllpSessionEnd.ClientClosed;
            case MllpDeliveryOutcome.NoDestination:
                return await NakAsync(session, header, output, MllpRejectReason.NoDestination, Hl7ErrorCode.ApplicationInternalError, $"No healthy node in cluster '{cluster.ClusterId}'; message not delivered, retry later.", started);
            default:
                return await NakAsync(session, header, output, MllpRejectReason.Undelivered, Hl7ErrorCode.ApplicationInternalError, $"No node of cluster '{cluster.ClusterId}' acknowledged the message after {delivery.Attempts} attempt(s); message not delivered, retry later.", started);
        }
    }

    private async ValueTask<MllpSessionEnd> HandleOversizeAsync(MllpSession session, Hl7HeaderReader headers, ReadOnlySequence<byte> seen, int maxFrameSize, PipeWriter output, long started)
    {
        // The bytes seen so far start with <SB> and, in practice, the whole MSH: answer on its MSH-10 if it can be read.
        var payload = !seen.IsEmpty && seen.FirstSpan.Length > 0 && seen.FirstSpan[0] == MllpConstants.StartBlock ? seen.Slice(1) : seen;
        var status = headers.TryRead(payload, out var header);
        if (status is Hl7ReadStatus.Success or Hl7ReadStatus.MissingMessageType)
        {
            return await NakAsync(session, header, output, MllpRejectReason.FrameTooLarge, Hl7ErrorCode.ValueTooLong, $"Message larger than the maximum frame size of {maxFrameSize} bytes; not forwarded.", started);
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

    private async ValueTask<MllpSessionEnd> NakAsync(MllpSession session, Hl7Header header, PipeWriter output, MllpRejectReason reason, Hl7ErrorCode error, string text, long started)
    {
        var controlId = header.MessageControlId.GetString();
        Log.Nak(logger, session.ConnectionId, controlId, MllpRejectReasons.Name(reason), text);
        if (reason is MllpRejectReason.FrameTooLarge or MllpRejectReason.MissingMessageType)
        {
            metrics.FrameRejected(session.Listener, reason);
        }

        MllpNak.WriteFrame(output, header, text, error, time.GetUtcNow());
        var flush = await output.FlushAsync();
        metrics.Nak(session.Listener, reason, time.GetElapsedTime(started));
        return flush.IsCompleted ? MllpSessionEnd.ClientAborted : MllpSessionEnd.ClientClosed;
    }

    private static string MessageTypeTag(in Hl7Header header)
        => header.TriggerEvent.IsEmpty ? header.MessageCode.GetString() : header.MessageCode.GetString() + "^" + header.TriggerEvent.GetString();
}
