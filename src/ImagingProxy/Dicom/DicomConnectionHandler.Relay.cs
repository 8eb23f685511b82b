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
    private async Task<DicomAssociationEndReason> RelayAsync(ConnectionContext client, ConnectionContext node, DicomAssociation association, TimeSpan idleTimeout)
    {
        // Draining does not stop a relay (the association runs until it is released); only the drain deadline does.
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(drain.Deadline, client.ConnectionClosed);
        var clientObserver = new DimseObserver(new DicomRelayEvents(association, fromClient: true, metrics));
        var nodeObserver = new DimseObserver(new DicomRelayEvents(association, fromClient: false, metrics));
        var clientToNode = PumpAsync(client.Transport.Input, node.Transport.Output, clientObserver, association, fromClient: true, stop.Token);
        var nodeToClient = PumpAsync(node.Transport.Input, client.Transport.Output, nodeObserver, association, fromClient: false, stop.Token);
        var idle = WatchIdleAsync(association, idleTimeout, stop.Token);

        var first = await Task.WhenAny(clientToNode, nodeToClient, idle);
        var shutdown = drain.Deadline.IsCancellationRequested;
        await stop.CancelAsync();
        var outcome = new RelayOutcome(
            await clientToNode,
            await nodeToClient,
            ClientSideEndedFirst: first == clientToNode,
            association.Released,
            association.ClientAborted,
            association.NodeAborted,
            Idle: await idle,
            Shutdown: shutdown);
        var reason = outcome.Decide();
        if (reason == DicomAssociationEndReason.Shutdown)
        {
            drain.CountAborted(association.Id, association.CallingAeTitle ?? string.Empty, association.CalledAeTitle ?? string.Empty, association.DestinationId ?? string.Empty);
        }

        if (RelayOutcome.AbortNode(reason))
        {
            await SendAbortAsync(node.Transport.Output, association.NodeMalformed is { } nodeError ? AbortReasonFor(nodeError) : AbortReason.ReasonNotSpecified);
        }

        if (RelayOutcome.AbortClient(reason))
        {
            await SendAbortAsync(client.Transport.Output, association.ClientMalformed is { } clientError ? AbortReasonFor(clientError) : AbortReason.ReasonNotSpecified);
        }

        await node.Transport.Output.CompleteAsync();
        await node.Transport.Input.CompleteAsync();
        return reason;
    }

    private async Task<RelayEnd> PumpAsync(PipeReader input, PipeWriter output, DimseObserver observer, DicomAssociation association, bool fromClient, CancellationToken stop)
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

                foreach (var segment in buffer)
                {
                    output.Write(segment.Span);
                }

                if (fromClient)
                {
                    association.BytesFromClient += buffer.Length;
                }
                else
                {
                    association.BytesFromNode += buffer.Length;
                }

                metrics.BytesRelayed(association.Listener, association.ClusterId ?? string.Empty, fromClient, buffer.Length);
            }

            input.AdvanceTo(buffer.End);
            if (!buffer.IsEmpty)
            {
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

                if (flushed.IsCompleted)
                {
                    return RelayEnd.TargetClosed;
                }
            }

            if (read.IsCompleted)
            {
                return RelayEnd.SourceClosed;
            }

            if (read.IsCanceled)
            {
                return RelayEnd.Stopped;
            }
        }
    }

    /// <summary>True when nothing moved either way for <paramref name="idleTimeout"/>; false when stopped first.</summary>
    private async Task<bool> WatchIdleAsync(DicomAssociation association, TimeSpan idleTimeout, CancellationToken stop)
    {
        try
        {
            var wait = idleTimeout;
            while (true)
            {
                await Task.Delay(wait, time, stop);
                var idleFor = time.GetElapsedTime(association.LastActivity);
                if (idleFor >= idleTimeout)
                {
                    return true;
                }

                wait = idleTimeout - idleFor;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
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
