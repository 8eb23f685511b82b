using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Sockets;
using ImagingProxy.Configuration;
using ImagingProxy.Hosting;
using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Health;

namespace ImagingProxy.Dicom;

/// <summary>
/// The DICOM association proxy (Kestrel in, the proxy's own socket out: <see cref="DicomNodeConnection"/>).
/// Reads the client's A-ASSOCIATE-RQ under ARTIM, routes it by Called AE title, replays it to a node of the route's
/// cluster until one accepts (failover before acceptance), then relays both ways while observing the DIMSE traffic.
/// Each association ends with one <see cref="DicomAssociationEndReason"/> in one log line.
/// </summary>
public sealed partial class DicomConnectionHandler(
    DicomProxySettings settings,
    IProxyStateLookup proxyState,
    DicomDestinationSelector selector,
    IDestinationHealthUpdater healthUpdater,
    DicomProxyMetrics metrics,
    TimeProvider time,
    DicomDrain drain,
    DicomFailoverPipelines failover,
    NodeTls nodeTls,
    ILogger<DicomConnectionHandler> logger) : ConnectionHandler
{
    /// <summary>
    /// How long after the drain began a connection still waiting for its A-ASSOCIATE-RQ may take to send it (then it is
    /// rejected transiently); after that it is closed, ended as <c>shutdown</c>. A modality sends its RQ as soon as it
    /// has connected.
    /// </summary>
    public static TimeSpan DrainRequestWait => ConnectionDrain.RequestWait;

    /// <summary>Cluster metadata: <c>true</c> replaces the Called AE title with the destination's <c>AeTitle</c> metadata.</summary>
    public const string RewriteCalledAeTitleKey = MetadataKeys.RewriteCalledAeTitle;

    /// <summary>Connections open per listener (accept to close), for the listener's <c>MaxAssociations</c>.</summary>
    private readonly ListenerConnectionCounts _open = new();

    /// <summary>Associations open on <paramref name="listener"/> now (accepted, not yet closed).</summary>
    internal int OpenOn(string listener) => _open.OpenOn(listener);

    public override Task OnConnectedAsync(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        return connection.Features.Get<StartedAtAccept>() is { } started
            ? started.Association
            : RunAsync(connection, connection.Features.Get<IProxyListenerFeature>()?.Name ?? string.Empty, atAccept: false);
    }

    /// <summary>
    /// Starts the association on the thread that accepted the connection (<see cref="DicomAcceptStart"/>); Kestrel's call
    /// of <see cref="OnConnectedAsync"/> later waits for it.
    /// </summary>
    internal void StartAtAccept(ConnectionContext connection, string listener)
        => connection.Features.Set(new StartedAtAccept(RunAsync(connection, listener, atAccept: true)));

    /// <summary>The association a connection started when it was accepted.</summary>
    private sealed record StartedAtAccept(Task Association);

    private async Task RunAsync(ConnectionContext connection, string listener, bool atAccept)
    {
        var options = settings.Current;
        var association = new DicomAssociation(connection.ConnectionId, listener, connection.RemoteEndPoint, time.GetTimestamp()) { StartedAtAccept = atAccept };
        var reason = DicomAssociationEndReason.ClientClosed;
        using var activity = ImagingProxyTelemetry.ActivitySource.HasListeners()
            ? ImagingProxyTelemetry.ActivitySource.StartActivity(ActivityName, ActivityKind.Server)
            : null;
        var open = _open.For(listener);
        var count = open.Add();
        DicomEarlyConnection? early = null;
        try
        {
            early = StartEarlyConnect(association, options, count);
            reason = await ServeAsync(connection, association, options, early, open);
        }
        catch (Exception ex) when (ex is IOException or SocketException or ConnectionResetException or ConnectionAbortedException or OperationCanceledException or ObjectDisposedException)
        {
            reason = drain.Deadline.IsCancellationRequested ? DicomAssociationEndReason.Shutdown : DicomAssociationEndReason.ClientClosed;
        }
        finally
        {
            if (early is not null)
            {
                metrics.EarlyConnect(association.Listener, early.Cluster.ClusterId, early.Taken);
                await early.DisposeAsync();
            }

            open.Remove();
            End(association, reason, activity);
        }
    }

    /// <summary>The name of the <see cref="Activity"/> of each association (only when someone listens).</summary>
    public const string ActivityName = "dicom.association";

    /// <summary>
    /// Listener option <c>EarlyConnect</c>: when every route of the listener goes to one cluster, the node connect starts
    /// now, in parallel with the client's A-ASSOCIATE-RQ (not while draining, and not for a connection already over the
    /// listener's MaxAssociations, <paramref name="open"/> counting it: no new work then).
    /// </summary>
    private DicomEarlyConnection? StartEarlyConnect(DicomAssociation association, DicomOptions options, int open)
    {
        if (!options.Listeners.TryGetValue(association.Listener, out var listener) || listener.EarlyConnect != true || drain.IsDraining
            || open > listener.MaxAssociations)
        {
            return null;
        }

        var clusterId = DicomRouteTable.SingleCluster(settings.OrderedRoutes(options), association.Listener);
        return clusterId is not null && proxyState.TryGetCluster(clusterId, out var cluster)
            ? DicomEarlyConnection.Start(cluster, selector, failover.For(settings.Failover).Connect)
            : null;
    }

    private async Task<DicomAssociationEndReason> ServeAsync(ConnectionContext connection, DicomAssociation association, DicomOptions options, DicomEarlyConnection? early, ListenerConnectionCounts.Count open)
    {
        var client = connection.Transport;
        var limit = DicomProxySettings.MaxAssociatePduLength(options);

        FirstPdu first;

        // PS3.8 §9.1.2: ARTIM runs from the transport connect to the whole A-ASSOCIATE-RQ. The drain does not end the wait
        // for the RQ at once (an RQ is answered below: rejected transiently, so the modality goes elsewhere); it ends it
        // DrainRequestWait after it began, so that a connection that sends nothing does not hold the shutdown until the
        // drain deadline (Kestrel accepts no connection meanwhile).
        using (var artim = new CancellationTokenSource(DicomProxySettings.ArtimTimeout(options), time))
        using (var artimOrClosed = CancellationTokenSource.CreateLinkedTokenSource(artim.Token, connection.ConnectionClosed, drain.RequestWaitOver))
        {
            try
            {
                first = await ReadFirstPduAsync(client.Input, limit, artimOrClosed.Token);
            }
            catch (OperationCanceledException) when (artim.IsCancellationRequested || drain.RequestWaitOver.IsCancellationRequested)
            {
                // PS3.8 Table 9-10, Sta2 + ARTIM expired: AA-2, close the transport (no association exists to abort).
                return drain.RequestWaitOver.IsCancellationRequested ? DicomAssociationEndReason.Shutdown : DicomAssociationEndReason.Artim;
            }
        }

        if (first.Status == PduReadResult.Incomplete)
        {
            return DicomAssociationEndReason.ClientClosed;
        }

        if (first.Status == PduReadResult.Complete && first.Header.Type == PduType.Abort && first.Header.Length == PduWriter.FixedPduLength - PduHeader.Size)
        {
            // PS3.8 Table 9-10, Sta2 + A-ABORT PDU received: AA-2, close the transport. The requestor gave up before
            // asking anything: an A-ABORT back would answer an abort (the peer is already in Sta13 or gone).
            return DicomAssociationEndReason.ClientAborted;
        }

        if (first.Status == PduReadResult.TooLarge && first.Header.Type == PduType.AssociateRequest && logger.IsEnabled(LogLevel.Warning))
        {
            // An RQ refused like one that does not parse, and said so (event 303): a modality proposing that many
            // presentation contexts is told apart from garbage, and the line names the setting to raise.
            Log.RequestRefused(logger, association.Id, association.ClientEndPoint?.ToString() ?? string.Empty, association.Listener, AssociateParseError.OverMaximumLength,
                $"PDU-length {first.Header.Length} is over MaxAssociatePduLength {limit}", DescribeAbort(AbortReason.InvalidPduParameterValue));
        }

        if (first.Status != PduReadResult.Complete || first.Header.Type != PduType.AssociateRequest)
        {
            // PS3.8 §9.3.1 / Table 9-10 (Sta2): anything but an A-ASSOCIATE-RQ first is answered with A-ABORT.
            var abortReason = first.Status switch
            {
                PduReadResult.UnknownType => AbortReason.UnrecognizedPdu,
                PduReadResult.TooLarge => AbortReason.InvalidPduParameterValue,
                _ => AbortReason.UnexpectedPdu,
            };
            if (first.Header.Type != PduType.AssociateRequest && logger.IsEnabled(LogLevel.Warning))
            {
                // (An RQ over the limit was logged as a refused RQ, event 303, above.)
                // A scanner or a client of another protocol can send this in a loop: the text is built only for a line that is written.
                Log.FirstPduRefused(logger, association.Id, association.ClientEndPoint?.ToString() ?? string.Empty, association.Listener, DescribeFirstPdu(first, limit), DescribeAbort(abortReason));
            }

            await SendAbortAsync(client.Output, abortReason);
            return DicomAssociationEndReason.Malformed;
        }

        var pdu = first.Pdu!;
        if (!AssociateRequest.TryParse(new ReadOnlySequence<byte>(pdu, PduHeader.Size, pdu.Length - PduHeader.Size), out var request, out var error))
        {
            return await RefuseRequestAsync(client.Output, association, pdu, error);
        }

        association.CalledAeTitle = request.CalledAeTitle;
        association.CallingAeTitle = request.CallingAeTitle;
        var match = DicomRouteTable.Match(settings.OrderedRoutes(options), request.CalledAeTitle, request.CallingAeTitle, association.Listener);
        association.Routable = match.IsMatch;
        metrics.AssociationRequested(association.Listener, request.CallingAeTitle, request.CalledAeTitle, match.IsMatch);
        var setupStarted = time.GetTimestamp();

        // Issue 6: an RQ read after the drain began (Kestrel's close request, or the host stopping) is refused transiently.
        var closeRequested = connection.Features.Get<IConnectionLifetimeNotificationFeature>()?.ConnectionClosedRequested ?? CancellationToken.None;
        var draining = drain.IsDraining || closeRequested.IsCancellationRequested;
        switch (DicomDrain.Decide(DicomConnectionStage.RequestReceived, draining, drain.Deadline.IsCancellationRequested))
        {
            case DrainAction.RejectTransient:
                await SendRejectAsync(client.Output, AssociateRejectResult.RejectedTransient, AssociateRejectSource.ServiceProviderPresentation, DrainRejectReason);
                drain.CountRejected(association.Id, request.CallingAeTitle, request.CalledAeTitle);
                return DicomAssociationEndReason.Draining;
            case DrainAction.Abort:
                await SendAbortAsync(client.Output, AbortReason.ReasonNotSpecified);
                return DicomAssociationEndReason.Shutdown;
        }

        // The listener's MaxAssociations (this association included), read from the configuration of now.
        if (options.Listeners.TryGetValue(association.Listener, out var listenerConfig) && listenerConfig.MaxAssociations is { } max
            && open.Value > max)
        {
            await SendRejectAsync(client.Output, AssociateRejectResult.RejectedTransient, AssociateRejectSource.ServiceProviderPresentation, AssociateRejectReasons.ServiceProviderPresentationLocalLimitExceeded);
            Log.ListenerLimit(logger, association.Id, association.Listener, max, request.CallingAeTitle, request.CalledAeTitle);
            return DicomAssociationEndReason.ListenerLimit;
        }

        if (!match.IsMatch)
        {
            await SendRejectAsync(client.Output, AssociateRejectResult.RejectedPermanent, AssociateRejectSource.ServiceUser,
                match.Result == DicomRouteMatchResult.CallingAeTitleNotRecognized
                    ? AssociateRejectReasons.ServiceUserCallingAeTitleNotRecognized
                    : AssociateRejectReasons.ServiceUserCalledAeTitleNotRecognized);
            return DicomAssociationEndReason.NoRoute;
        }

        association.RouteId = match.RouteId;
        association.ClusterId = match.Route!.Cluster;
        if (association.ClusterId is null || !proxyState.TryGetCluster(association.ClusterId, out var cluster))
        {
            await SendCongestionAsync(client.Output);
            return DicomAssociationEndReason.NoDestination;
        }

        // The cluster's own name (YARP finds it whatever the route's case): metrics, logs and /status then agree.
        association.ClusterId = cluster.ClusterId;

        if (early is not null && early.Cluster != cluster)
        {
            // The RQ was routed to another cluster: the early connection's node is released now, not when the association ends.
            await early.CloseUnusedAsync();
        }

        using var setup = CancellationTokenSource.CreateLinkedTokenSource(connection.ConnectionClosed, drain.Deadline);
        ConnectAttempt attempt;
        try
        {
            attempt = await ConnectAsync(association, cluster, early is not null && early.Cluster == cluster ? early : null, pdu, request.CalledAeTitle, options, setup.Token);
        }
        catch (OperationCanceledException) when (drain.Deadline.IsCancellationRequested && !connection.ConnectionClosed.IsCancellationRequested)
        {
            // Still being set up at the drain deadline: ended the protocol's way as a relaying association is (A-ABORT,
            // event 312; the node that held the RQ got its A-ABORT in the attempt), not with a bare close.
            await SendAbortAsync(client.Output, AbortReason.ReasonNotSpecified);
            drain.CountAborted(association.Id, request.CallingAeTitle, request.CalledAeTitle, association.DestinationId ?? "none");
            return DicomAssociationEndReason.Shutdown;
        }

        metrics.SetupCompleted(association.Listener, association.ClusterId, time.GetElapsedTime(setupStarted), attempt.Node is not null);
        switch (attempt.Outcome)
        {
            case DicomAttemptResult.Rejected:
                // The node's own reason (a PACS that does not know the modality's Calling AE title is the usual one): the
                // end line says only "rejected". The reason's text is built only for a line that is written.
                if (logger.IsEnabled(LogLevel.Information))
                {
                    Log.NodeRejected(logger, association.Id, association.DestinationId ?? string.Empty, cluster.ClusterId, DescribeReject(attempt.Answer!),
                        request.CallingAeTitle, request.CalledAeTitle);
                }

                await SendAsync(client.Output, attempt.Answer!);
                return DicomAssociationEndReason.Rejected;
            case DicomAttemptResult.Exhausted:
                await SendCongestionAsync(client.Output);
                return DicomAssociationEndReason.NoDestination;
        }

        var node = attempt.Node!;
        var destination = attempt.Destination!;
        try
        {
            await using (node)
            {
                // The AC, with the client's Called AE title restored when it was rewritten (PS3.8 §9.3.3 copies the RQ's).
                await SendAsync(client.Output, attempt.Answer!);
                metrics.AssociationStarted(association.Listener, association.RouteId ?? string.Empty, association.ClusterId);
                try
                {
                    return await RelayAsync(connection, node, association, DicomProxySettings.IdleTimeout(options), DicomProxySettings.ArtimTimeout(options));
                }
                finally
                {
                    metrics.AssociationStopped(association.Listener, association.RouteId ?? string.Empty, association.ClusterId);
                }
            }
        }
        finally
        {
            selector.Release(cluster, destination);
        }
    }

    /// <summary>
    /// Answers an A-ASSOCIATE-RQ that <see cref="AssociateRequest.TryParse"/> refused and logs why (event 303). A whole RQ
    /// with an unacceptable field gets A-ASSOCIATE-RJ (PS3.8 §9.3.4, Table 9-10 AE-6): an invalid Calling or Called AE
    /// title permanent, service-user, calling- (3) or called-AE-title-not-recognized (7), ending as <c>no_route</c> as an
    /// unknown title does; an unsupported protocol version permanent, service-provider (ACSE), reason 2. An RQ that does
    /// not parse gets A-ABORT, invalid-PDU-parameter-value (Table 9-10 AA-1).
    /// </summary>
    private async Task<DicomAssociationEndReason> RefuseRequestAsync(PipeWriter output, DicomAssociation association, byte[] pdu, AssociateParseError error)
    {
        var (source, reason, end) = error switch
        {
            AssociateParseError.InvalidCallingAeTitle => (AssociateRejectSource.ServiceUser, AssociateRejectReasons.ServiceUserCallingAeTitleNotRecognized, DicomAssociationEndReason.NoRoute),
            AssociateParseError.InvalidCalledAeTitle => (AssociateRejectSource.ServiceUser, AssociateRejectReasons.ServiceUserCalledAeTitleNotRecognized, DicomAssociationEndReason.NoRoute),
            AssociateParseError.ProtocolVersionNotSupported => (AssociateRejectSource.ServiceProviderAcse, AssociateRejectReasons.ServiceProviderAcseProtocolVersionNotSupported, DicomAssociationEndReason.Rejected),
            _ => (default(AssociateRejectSource), (byte)0, DicomAssociationEndReason.Malformed),
        };
        if (logger.IsEnabled(LogLevel.Warning))
        {
            // A client can send refused RQs in a loop: the text is built only for a line that is written.
            var answer = end == DicomAssociationEndReason.Malformed
                ? DescribeAbort(AbortReason.InvalidPduParameterValue)
                : $"A-ASSOCIATE-RJ rejected-permanent ({AssociateRejectReasons.Describe(source, reason)})";
            Log.RequestRefused(logger, association.Id, association.ClientEndPoint?.ToString() ?? string.Empty, association.Listener, error, DescribeParseError(pdu, error), answer);
        }

        if (end == DicomAssociationEndReason.Malformed)
        {
            await SendAbortAsync(output, AbortReason.InvalidPduParameterValue);
        }
        else
        {
            await SendRejectAsync(output, AssociateRejectResult.RejectedPermanent, source, reason);
        }

        return end;
    }

    /// <summary>An A-ASSOCIATE-RJ PDU's source and reason (PS3.8 Table 9-21; bytes 8 and 9 of the 10-byte PDU).</summary>
    internal static string DescribeReject(byte[] reject)
    {
        var source = (AssociateRejectSource)reject[8];
        var sourceName = source switch
        {
            AssociateRejectSource.ServiceUser => "service-user",
            AssociateRejectSource.ServiceProviderAcse => "service-provider (ACSE)",
            AssociateRejectSource.ServiceProviderPresentation => "service-provider (presentation)",
            _ => $"source {reject[8]}",
        };
        return $"{sourceName}, {AssociateRejectReasons.Describe(source, reject[9])}";
    }

    /// <summary>What the first PDU was instead of an A-ASSOCIATE-RQ (its type and length only, never its content).</summary>
    private static string DescribeFirstPdu(FirstPdu first, uint limit) => first.Status switch
    {
        PduReadResult.UnknownType => $"unknown PDU type 0x{(byte)first.Header.Type:X2}",
        PduReadResult.TooLarge => $"{DescribeType(first.Header.Type)} with PDU-length {first.Header.Length}, over the limit of {limit} for association set-up",
        _ when first.Header.Type == PduType.Abort => $"A-ABORT with PDU-length {first.Header.Length}, not 4",
        _ => $"{DescribeType(first.Header.Type)} before any A-ASSOCIATE-RQ",
    };

    private static string DescribeType(PduType type) => type switch
    {
        PduType.AssociateRequest => "A-ASSOCIATE-RQ",
        PduType.AssociateAccept => "A-ASSOCIATE-AC",
        PduType.AssociateReject => "A-ASSOCIATE-RJ",
        PduType.PDataTransfer => "P-DATA-TF",
        PduType.ReleaseRequest => "A-RELEASE-RQ",
        PduType.ReleaseResponse => "A-RELEASE-RP",
        PduType.Abort => "A-ABORT",
        _ => $"PDU type 0x{(byte)type:X2}",
    };

    /// <summary>A received A-ABORT's source and, for the service-provider, its reason (PS3.8 Table 9-26).</summary>
    private static string DescribeAbort(AbortSource source, AbortReason reason) => source switch
    {
        AbortSource.ServiceUser => "A-ABORT from the service-user (the node's application)",
        AbortSource.ServiceProvider => $"A-ABORT from the service-provider (the node's upper layer), {DescribeAbortReason(reason)}",
        _ => $"A-ABORT source {(byte)source}, reason {(byte)reason}",
    };

    private static string DescribeAbortReason(AbortReason reason) => reason switch
    {
        AbortReason.ReasonNotSpecified => "reason-not-specified",
        AbortReason.UnrecognizedPdu => "unrecognized-PDU",
        AbortReason.UnexpectedPdu => "unexpected-PDU",
        AbortReason.UnrecognizedPduParameter => "unrecognized-PDU-parameter",
        AbortReason.UnexpectedPduParameter => "unexpected-PDU-parameter",
        AbortReason.InvalidPduParameterValue => "invalid-PDU-parameter-value",
        _ => $"reason {(byte)reason}",
    };

    /// <summary>The A-ABORT ImagingProxy answers with, as a log line names it: "A-ABORT (unexpected-PDU)".</summary>
    private static string DescribeAbort(AbortReason reason) => $"A-ABORT ({DescribeAbortReason(reason)})";

    /// <summary>What was wrong with the RQ (<paramref name="pdu"/>, header included), without the values it carried.</summary>
    private static string DescribeParseError(byte[] pdu, AssociateParseError error)
    {
        // PS3.8 Table 9-11: Called-AE-title at bytes 11-26 of the PDU, Calling-AE-title at 27-42.
        const int calledOffset = PduHeader.Size + 4;
        return error switch
        {
            AssociateParseError.InvalidCalledAeTitle => "Called AE title " + AeTitle.DescribeInvalid(pdu.AsSpan(calledOffset, AeTitle.Length)),
            AssociateParseError.InvalidCallingAeTitle => "Calling AE title " + AeTitle.DescribeInvalid(pdu.AsSpan(calledOffset + AeTitle.Length, AeTitle.Length)),
            AssociateParseError.ProtocolVersionNotSupported => "protocol version without bit 0 set",
            AssociateParseError.TooShort => "shorter than the 68-byte fixed part",
            AssociateParseError.ItemLengthInvalid => "an item or sub-item length runs past its container",
            AssociateParseError.InvalidApplicationContext => "no Application Context item, or more than one",
            AssociateParseError.MissingPresentationContext => "no Presentation Context item",
            AssociateParseError.InvalidPresentationContext => "a Presentation Context without exactly one abstract syntax or without a transfer syntax",
            AssociateParseError.InvalidUserInformation => "no User Information item, or more than one",
            AssociateParseError.InvalidMaximumLength => "a Maximum Length sub-item whose length is not 4",
            _ => error.ToString(),
        };
    }

    private static async Task<FirstPdu> ReadFirstPduAsync(PipeReader input, uint limit, CancellationToken cancellationToken)
    {
        while (true)
        {
            var read = await input.ReadAsync(cancellationToken);
            var buffer = read.Buffer;
            var status = PduReader.TryReadPdu(ref buffer, limit, out var header, out var body);
            if (status == PduReadResult.Complete)
            {
                // Association PDUs are small and bounded by the limit: one copy, so the RQ can be replayed on failover.
                var pdu = read.Buffer.Slice(0, PduHeader.Size + body.Length).ToArray();
                input.AdvanceTo(buffer.Start);
                return new FirstPdu(status, header, pdu);
            }

            if (status != PduReadResult.Incomplete)
            {
                input.AdvanceTo(read.Buffer.Start);
                return new FirstPdu(status, header, null);
            }

            if (read.IsCompleted)
            {
                input.AdvanceTo(read.Buffer.End);
                return new FirstPdu(PduReadResult.Incomplete, header, null);
            }

            input.AdvanceTo(read.Buffer.Start, read.Buffer.End);
        }
    }

    private static Task SendAbortAsync(PipeWriter output, AbortReason reason)
    {
        PduWriter.WriteAbort(output, AbortSource.ServiceProvider, reason);
        return FlushBestEffortAsync(output);
    }

    private static Task SendRejectAsync(PipeWriter output, AssociateRejectResult result, AssociateRejectSource source, byte reason)
    {
        PduWriter.WriteAssociateReject(output, result, source, reason);
        return FlushBestEffortAsync(output);
    }

    /// <summary>
    /// PS3.8 Table 9-21 reason (source 3, service-provider presentation) of the transient reject while draining:
    /// local-limit-exceeded, so that a drain can be told apart on the wire from "no node available" (temporary-congestion).
    /// </summary>
    public const byte DrainRejectReason = AssociateRejectReasons.ServiceProviderPresentationLocalLimitExceeded;

    // PS3.8 Table 9-21: rejected-transient, service-provider (presentation), temporary-congestion.
    private static Task SendCongestionAsync(PipeWriter output) => SendRejectAsync(
        output,
        AssociateRejectResult.RejectedTransient,
        AssociateRejectSource.ServiceProviderPresentation,
        AssociateRejectReasons.ServiceProviderPresentationTemporaryCongestion);

    private static Task SendAsync(PipeWriter output, byte[] pdu)
    {
        output.Write(pdu);
        return FlushBestEffortAsync(output);
    }

    // Answers before or after the relay are best effort: the peer may be gone already and the outcome is decided.
    private static async Task FlushBestEffortAsync(PipeWriter output) => await TryFlushAsync(output, CancellationToken.None);

    /// <summary>A best-effort flush; false only when it did not complete before <paramref name="timeout"/> (the peer reads nothing).</summary>
    private static async Task<bool> TryFlushAsync(PipeWriter output, CancellationToken timeout)
    {
        try
        {
            var result = await output.FlushAsync(timeout);
            if (result.IsCanceled)
            {
                // The relay's quiet stop (CancelPendingFlush) cancels the next flush when none was pending: this one.
                result = await output.FlushAsync(timeout);
            }

            return !result.IsCanceled;
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            return false;
        }
        catch (Exception ex) when (ex is IOException or SocketException or ConnectionResetException or ConnectionAbortedException or ObjectDisposedException or InvalidOperationException)
        {
            return true;
        }
    }

    /// <summary>
    /// The level of an association's end line: a warning when the node failed it (closed or aborted it) or no node could
    /// take it, information otherwise (the client's own release, abort or close included; malformed input has its own
    /// lines).
    /// </summary>
    internal static LogLevel EndLevel(DicomAssociationEndReason reason)
        => reason is DicomAssociationEndReason.NodeAborted or DicomAssociationEndReason.NodeClosed or DicomAssociationEndReason.NoDestination
            ? LogLevel.Warning
            : LogLevel.Information;

    private void End(DicomAssociation association, DicomAssociationEndReason reason, Activity? activity)
    {
        metrics.AssociationEnded(association.Listener, association.RouteId, association.ClusterId, association.DestinationId, reason, association.CallingAeTitle, association.CalledAeTitle, association.Routable);
        if (activity is not null)
        {
            activity.SetTag("dicom.association_id", association.Id);
            activity.SetTag("dicom.calling_ae_title", association.CallingAeTitle);
            activity.SetTag("dicom.called_ae_title", association.CalledAeTitle);
            activity.SetTag("imagingproxy.listener", association.Listener);
            activity.SetTag("imagingproxy.cluster", association.ClusterId);
            activity.SetTag("imagingproxy.destination", association.DestinationId);
            activity.SetTag("dicom.end_reason", DicomProxyMetrics.ReasonName(reason));
            activity.SetTag("dicom.attempts", association.Attempts);
            if (reason is DicomAssociationEndReason.Malformed or DicomAssociationEndReason.NoDestination or DicomAssociationEndReason.Idle
                or DicomAssociationEndReason.Artim or DicomAssociationEndReason.Shutdown or DicomAssociationEndReason.ClientClosed or DicomAssociationEndReason.NodeClosed)
            {
                activity.SetStatus(ActivityStatusCode.Error, DicomProxyMetrics.ReasonName(reason));
            }
        }

        // The arguments build strings (endpoint, DIMSE summary): only when the line is written.
        var level = EndLevel(reason);
        if (logger.IsEnabled(level))
        {
            Log.AssociationEnded(
                logger,
                level,
                association.Id,
                DicomProxyMetrics.ReasonName(reason),
                association.CallingAeTitle ?? string.Empty,
                association.CalledAeTitle ?? string.Empty,
                association.ClientEndPoint?.ToString() ?? string.Empty,
                association.Listener,
                association.RouteId ?? string.Empty,
                association.ClusterId ?? string.Empty,
                association.DestinationId ?? string.Empty,
                association.Attempts,
                association.BytesFromClient,
                association.BytesFromNode,
                association.DescribeCommands(),
                time.GetElapsedTime(association.StartTimestamp).TotalMilliseconds);
        }

        AssociationEnded?.Invoke(new DicomAssociationSummary(
            association.Id,
            reason,
            association.CallingAeTitle,
            association.CalledAeTitle,
            association.ClusterId,
            association.DestinationId,
            association.BytesFromClient,
            association.BytesFromNode,
            association.CommandCount(DimseCommandField.CStoreRequest),
            association.CommandCount(DimseCommandField.CEchoRequest),
            association.Attempts,
            association.StartedAtAccept));
    }

    /// <summary>Raised once per connection when it ends (tests and diagnostics).</summary>
    public event Action<DicomAssociationSummary>? AssociationEnded;

    private readonly record struct FirstPdu(PduReadResult Status, PduHeader Header, byte[]? Pdu);
}
