using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

namespace ImagingProxy.Dicom;

public sealed partial class DicomConnectionHandler
{
    /// <summary>
    /// The full-duplex relay after the A-ASSOCIATE-AC. Each direction observes its bytes (DIMSE commands, release,
    /// abort) and writes them on; the first direction to stop stops the other. A side that vanished without release
    /// or abort leaves the other with an A-ABORT (PS3.8 §9.3.8, source 2), never a hang.
    /// </summary>
    private async Task<DicomAssociationEndReason> RelayAsync(ConnectionContext client, DicomNodeConnection node, DicomAssociation association, TimeSpan idleTimeout, TimeSpan artimTimeout)
    {
        // Draining does not stop a relay (the association runs until it is released); only the drain deadline does.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(drain.Deadline);

        // The client's transport closing stops the relay too, quietly (no cancellation exception in either direction):
        // Kestrel signals ConnectionClosed from the thread pool right after the client's FIN, often while the relay is
        // already ending by itself. Cancelling the token there threw in about one association in nine (dotnet-trace).
        using var idle = new DicomIdleWatch(association, time, idleTimeout, artimTimeout);
        association.IdleWatch = idle;
        var quiet = new QuietStop(client.Transport, node);
        var clientClosed = client.ConnectionClosed.UnsafeRegister(static s => ((QuietStop)s!).Request(), quiet);
        var clientObserver = new DimseObserver(new DicomRelayEvents(association, fromClient: true, metrics));
        var nodeObserver = new DimseObserver(new DicomRelayEvents(association, fromClient: false, metrics));
        var clientToNode = ClientToNodeAsync(client.Transport.Input, node, clientObserver, association, stop.Token);
        var nodeToClient = NodeToClientAsync(node, client.Transport.Output, nodeObserver, association, quiet, stop.Token);

        var first = await Task.WhenAny(clientToNode, nodeToClient, idle.Expired);
        if (!Thread.CurrentThread.IsThreadPoolThread)
        {
            // With inline socket completions the relay's end (quiet stop, log line, metrics, close) would run on the socket
            // thread that saw the close, and other connections' events would wait behind it. In paired runs (bench/ab.sh)
            // C-ECHO associations/s were 1-4% lower without this hop, association set-up the same.
            await Task.Yield();
        }

        var shutdown = drain.Deadline.IsCancellationRequested;
        var idleExpired = first == idle.Expired && idle.Expired.Result;
        clientClosed.Unregister();
        idle.Dispose();
        await StopQuietlyAsync(quiet, stop, clientToNode, nodeToClient);
        var outcome = new RelayOutcome(
            await clientToNode,
            await nodeToClient,
            ClientSideEndedFirst: first == clientToNode,
            association.Released,
            association.ClientAborted,
            association.NodeAborted,
            Idle: idleExpired,
            Shutdown: shutdown);
        ReportBytes(association, fromClient: true);
        ReportBytes(association, fromClient: false);
        var reason = outcome.Decide();
        if (reason == DicomAssociationEndReason.Shutdown)
        {
            drain.CountAborted(association.Id, association.CallingAeTitle ?? string.Empty, association.CalledAeTitle ?? string.Empty, association.DestinationId ?? string.Empty);
        }

        if (reason == DicomAssociationEndReason.NodeAborted && logger.IsEnabled(Microsoft.Extensions.Logging.LogLevel.Warning))
        {
            // The end line (a warning) names the node; its A-ABORT's source and reason say whether the node's application
            // (source 0) or its upper layer (source 2, and why) ended the association.
            Log.NodeAborted(logger, association.Id, association.DestinationId ?? string.Empty, association.ClusterId ?? string.Empty, DescribeAbort(association.NodeAbort.Source, association.NodeAbort.Reason));
        }

        if (reason == DicomAssociationEndReason.Malformed && (association.ClientMalformed ?? association.NodeMalformed) is { } streamError)
        {
            Log.StreamMalformed(logger, association.Id, association.ClientMalformed is not null ? "client" : "node", streamError,
                association.CallingAeTitle ?? string.Empty, association.CalledAeTitle ?? string.Empty, association.ClientEndPoint?.ToString() ?? string.Empty, association.DestinationId ?? string.Empty);
        }

        if (RelayOutcome.AbortNode(reason))
        {
            await SendAbortAsync(node, association.NodeMalformed is { } nodeError ? AbortReasonFor(nodeError) : AbortReason.ReasonNotSpecified);
        }

        if (RelayOutcome.AbortClient(reason))
        {
            PduWriter.WriteAbort(client.Transport.Output, AbortSource.ServiceProvider, association.ClientMalformed is { } clientError ? AbortReasonFor(clientError) : AbortReason.ReasonNotSpecified);
        }

        await FlushClientAsync(client);

        if (node.IsTls)
        {
            // close_notify first; a node that stopped reading cannot hold the handler.
            using var closing = new CancellationTokenSource(s_abortSendTimeout, time);
            await node.ShutdownSendAsync(closing.Token);
        }
        else
        {
            await node.ShutdownSendAsync(CancellationToken.None);
        }

        return reason;
    }

    /// <summary>Client to node: the bytes Kestrel received are observed and sent from its buffers, then released.</summary>
    private async Task<RelayEnd> ClientToNodeAsync(PipeReader input, DicomNodeConnection node, DimseObserver observer, DicomAssociation association, CancellationToken stop)
    {
        while (true)
        {
            ReadResult read;
            try
            {
                read = await input.ReadAsync(stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return RelayEnd.Stopped;
            }
            catch (Exception ex) when (IsTransportFailure(ex))
            {
                return RelayEnd.SourceClosed;
            }

            var buffer = read.Buffer;
            if (read.IsCanceled && !read.IsCompleted)
            {
                // CancelPendingRead: the relay is stopping; what arrived is not sent on.
                input.AdvanceTo(buffer.Start);
                return RelayEnd.Stopped;
            }

            // Cancelled and completed: the client closed (Kestrel completed the input, then its ConnectionClosed stopped
            // the relay while this direction was still sending). What the client sent last (its A-ABORT, say) still goes
            // to the node, and the end is the client's.

            if (!buffer.IsEmpty)
            {
                association.Touch(time.GetTimestamp());
                observer.Observe(buffer);
                if (observer.IsMalformed)
                {
                    // Garbage is not passed on: the sender gets A-ABORT, the other side too.
                    input.AdvanceTo(buffer.End);
                    return RelayEnd.Malformed;
                }

                try
                {
                    await node.SendAsync(buffer, stop);
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested)
                {
                    input.AdvanceTo(buffer.End);
                    return RelayEnd.Stopped;
                }
                catch (Exception ex) when (IsTransportFailure(ex))
                {
                    input.AdvanceTo(buffer.End);
                    return RelayEnd.TargetClosed;
                }

                association.BytesFromClient += buffer.Length;
                if (association.UnreportedBytes(fromClient: true) >= BytesReportStep)
                {
                    ReportBytes(association, fromClient: true);
                }
            }

            input.AdvanceTo(buffer.End);
            if (read.IsCompleted)
            {
                return RelayEnd.SourceClosed;
            }
        }
    }

    /// <summary>Node to client: received straight into the client's output pipe memory, observed, then committed and flushed.</summary>
    private async Task<RelayEnd> NodeToClientAsync(DicomNodeConnection node, PipeWriter output, DimseObserver observer, DicomAssociation association, QuietStop quiet, CancellationToken stop)
    {
        while (true)
        {
            var memory = output.GetMemory(NodeReceiveSize);
            int received;
            try
            {
                received = await node.ReceiveAsync(memory, stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return RelayEnd.Stopped;
            }
            catch (Exception ex) when (IsTransportFailure(ex))
            {
                // A TLS session whose receive side was shut down mid-record throws where a plain socket returns 0.
                return quiet.Requested ? RelayEnd.Stopped : RelayEnd.SourceClosed;
            }

            if (quiet.Requested)
            {
                // The receive side was shut down to stop this direction: what it returned is not relayed.
                return RelayEnd.Stopped;
            }

            if (received == 0)
            {
                return RelayEnd.SourceClosed;
            }

            association.Touch(time.GetTimestamp());
            observer.Observe(memory.Span[..received]);
            if (observer.IsMalformed)
            {
                // Garbage is not passed on (never committed to the client's pipe): both sides get A-ABORT.
                return RelayEnd.Malformed;
            }

            output.Advance(received);
            association.BytesFromNode += received;
            if (association.UnreportedBytes(fromClient: false) >= BytesReportStep)
            {
                ReportBytes(association, fromClient: false);
            }
            FlushResult flushed;
            try
            {
                flushed = await output.FlushAsync(stop);
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
                return RelayEnd.Stopped;
            }
            catch (Exception ex) when (IsTransportFailure(ex))
            {
                return RelayEnd.TargetClosed;
            }

            if (flushed.IsCanceled)
            {
                return RelayEnd.Stopped;
            }

            if (flushed.IsCompleted)
            {
                return RelayEnd.TargetClosed;
            }
        }
    }

    /// <summary>
    /// Relayed bytes go to the <c>imagingproxy.dicom.bytes</c> counter in steps of at least this many per direction, and
    /// the rest when the relay ends: a counter update per relayed chunk (up to 32 KiB) cost as much CPU as observing the
    /// chunk's PDUs, and a scrape every few seconds sees a 1 MiB step as a smooth rate.
    /// </summary>
    private const long BytesReportStep = 1024 * 1024;

    /// <summary>Adds the bytes relayed in one direction since the last report to the bytes counter.</summary>
    private void ReportBytes(DicomAssociation association, bool fromClient)
        => metrics.BytesRelayed(association.Listener, association.ClusterId ?? string.Empty, fromClient, association.TakeUnreportedBytes(fromClient));

    /// <summary>
    /// How much client-pipe memory each node receive asks for: a whole 16 KiB P-DATA-TF PDU (the usual maximum) at once.
    /// The block is held while the node is quiet (one per association, from Kestrel's 32 KiB pool).
    /// </summary>
    private const int NodeReceiveSize = 16 * 1024;

    /// <summary>A-ABORT to the node, best effort and bounded: a node that stopped reading cannot hold the handler.</summary>
    private async Task SendAbortAsync(DicomNodeConnection node, AbortReason reason)
    {
        var pdu = new ArrayBufferWriter<byte>(PduWriter.FixedPduLength);
        PduWriter.WriteAbort(pdu, AbortSource.ServiceProvider, reason);
        using var timeout = new CancellationTokenSource(s_abortSendTimeout, time);
        try
        {
            await node.SendAsync(pdu.WrittenMemory, timeout.Token);
        }
        catch (Exception ex) when (ex is OperationCanceledException || IsTransportFailure(ex))
        {
        }
    }

    /// <summary>
    /// What the relay leaves for the client (its A-ABORT, a PDU whose flush the stop cancelled) gets a bounded wait. A
    /// client that stopped reading (a zero window, Kestrel's output pipe over its pause threshold) would otherwise hold
    /// the handler, and with it the association's end: its log line, MaxAssociations slot, gauge and node load. Its
    /// connection is aborted instead.
    /// </summary>
    private async Task FlushClientAsync(ConnectionContext client)
    {
        using var timeout = new CancellationTokenSource(s_abortSendTimeout, time);
        if (!await TryFlushAsync(client.Transport.Output, timeout.Token))
        {
            client.Abort(new ConnectionAbortedException($"The client read nothing for {s_abortSendTimeout.TotalSeconds} s after its association ended."));
        }
    }

    /// <summary>How long an A-ABORT to a node, or the last bytes to a client, may wait for the peer to read.</summary>
    private static readonly TimeSpan s_abortSendTimeout = TimeSpan.FromSeconds(5);

    /// <summary>
    /// Stops what is still running once one part of the relay ended, without throwing in the usual case: a pending client
    /// read and flush are cancelled through the pipes, the node socket's receive side is shut down (a pending receive
    /// returns 0 on Linux). Before, a released association threw and caught about
    /// 1.6 cancellation exceptions (dotnet-counters), now none; the CPU change was within the noise of an A/B run, but a
    /// first-chance exception per association no longer buries real ones in a debugger or trace. Whatever has not ended
    /// after <see cref="s_quietStopGrace"/> (a send to a node that stopped reading) is cancelled.
    /// </summary>
    private async Task StopQuietlyAsync(QuietStop quiet, CancellationTokenSource stop, Task clientToNode, Task nodeToClient)
    {
        quiet.Request(clientToNodeRunning: !clientToNode.IsCompleted, nodeToClientRunning: !nodeToClient.IsCompleted);

        var all = Task.WhenAll(clientToNode, nodeToClient);
        if (!all.IsCompleted)
        {
            await all.WaitAsync(s_quietStopGrace, time).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            if (!all.IsCompleted)
            {
                await stop.CancelAsync();
            }
        }
    }

    /// <summary>How long the parts of a stopping relay get to end by themselves before their token is cancelled.</summary>
    private static readonly TimeSpan s_quietStopGrace = TimeSpan.FromSeconds(2);

    /// <summary>
    /// Stops the directions of a relay without an exception: a pending client read is cancelled through the pipe; for the
    /// node-to-client direction the pending flush is cancelled and the node socket's receive side shut down (a pending
    /// receive returns 0 on Linux). A direction that wakes up then sees <see cref="Requested"/> and ends as
    /// <see cref="RelayEnd.Stopped"/>. The relay's own stop touches only a direction still running, so an A-ABORT written
    /// to the client afterwards waits for its flush as usual; the client's ConnectionClosed stops both (the client is gone).
    /// </summary>
    private sealed class QuietStop(IDuplexPipe client, DicomNodeConnection node)
    {
        private volatile bool _requested;

        public bool Requested => _requested;

        public void Request(bool clientToNodeRunning = true, bool nodeToClientRunning = true)
        {
            _requested = true;
            if (clientToNodeRunning)
            {
                client.Input.CancelPendingRead();
            }

            if (nodeToClientRunning)
            {
                client.Output.CancelPendingFlush();
                node.ShutdownReceive();
            }
        }
    }

    private static AbortReason AbortReasonFor(DimseStreamError error) => error switch
    {
        DimseStreamError.UnknownPduType => AbortReason.UnrecognizedPdu,
        _ => AbortReason.InvalidPduParameterValue,
    };

    private static bool IsTransportFailure(Exception ex)
        => ex is IOException or SocketException or ConnectionResetException or ConnectionAbortedException or ObjectDisposedException or InvalidOperationException;
}
