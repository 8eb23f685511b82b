using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using ImagingProxy.Balancing;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using Microsoft.AspNetCore.Connections;
using Polly.Timeout;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Dicom;

public sealed partial class DicomConnectionHandler
{
    /// <summary>
    /// Failover before acceptance, through the <see cref="DicomFailoverPipelines"/> retry: each attempt replays the saved
    /// A-ASSOCIATE-RQ on a destination of the cluster not tried yet, until one answers A-ASSOCIATE-AC or rejects
    /// permanently, at most <c>ImagingProxy:Dicom:MaxAttempts</c> times. A connect failure or timeout, an A-ABORT, a
    /// close, a malformed answer (an A-ASSOCIATE-RJ included) or no answer before the AC mark the destination passively unhealthy when the cluster's passive health is
    /// on; a transient reject only moves on.
    /// </summary>
    private async Task<ConnectAttempt> ConnectAsync(
        DicomAssociation association,
        ClusterState cluster,
        DicomEarlyConnection? early,
        byte[] request,
        string clientCalledAeTitle,
        DicomOptions options,
        CancellationToken cancellationToken)
    {
        var config = cluster.Model.Config;
        var rewrite = string.Equals(config.Metadata?.GetValueOrDefault(RewriteCalledAeTitleKey), "true", StringComparison.OrdinalIgnoreCase);
        var passive = config.HealthCheck?.Passive;
        var pipelines = failover.For(settings.Failover);
        var tried = new HashSet<DestinationState>();
        var last = new ConnectAttempt(DicomAttemptResult.Exhausted);

        // The client's own ARTIM runs from its RQ (dcmtk's default 30 s, the proxy's default ArtimTimeout too): every
        // attempt's wait for the node's answer shares one ArtimTimeout, so that a node that never answers leaves the
        // others time to take the association before the client gives up.
        var setupStarted = time.GetTimestamp();
        var artim = DicomProxySettings.ArtimTimeout(options);
        var outcome = await pipelines.Attempts.ExecuteAsync(
            async token =>
            {
                var available = cluster.DestinationsState.AvailableDestinations;
                DestinationState? destination;
                int left;
                (Socket Socket, Task Connect)? connecting = null;
                if (early is { Taken: false } && AvailableDestinationsPolicies.Includes(available, early.Destination))
                {
                    // The connection opened when the client connected (already acquired): the first attempt takes it.
                    destination = early.Destination;
                    connecting = early.Take();
                    left = available.Count; // the first attempt (an early connection is never left for a later one): nothing tried yet
                }
                else
                {
                    if (early is { Taken: false })
                    {
                        // Its node is no longer available: closed now, so it does not hold the node's place meanwhile.
                        await early.CloseUnusedAsync();
                        early = null; // closed: no later attempt may take it, even when its node is back
                    }

                    var candidates = Candidates(cluster, available, tried);
                    left = candidates.Count;
                    destination = selector.PickAndAcquire(cluster, candidates);
                    if (destination is null && candidates.Count > 0 && PlaceQueues.QueueTimeout(config) is { } queueTimeout)
                    {
                        // Every candidate is at its MaxConcurrent: the association waits for a place (QueueTimeout).
                        destination = await WaitForPlaceAsync(association, cluster, tried, queueTimeout, artim - time.GetElapsedTime(setupStarted) - s_minAnswerWait, token);
                    }

                    if (destination is null)
                    {
                        last = new ConnectAttempt(DicomAttemptResult.Exhausted);
                        return last.Outcome;
                    }
                }

                tried.Add(destination);
                association.Attempts++;
                association.DestinationId = destination.DestinationId;
                var nodeAeTitle = rewrite ? destination.Model.Config.Metadata?.GetValueOrDefault(MetadataKeys.AeTitle) : null;
                var attemptsLeft = Math.Max(1, Math.Min(pipelines.Settings.MaxAttempts - association.Attempts + 1, left));
                var answerWait = (artim - time.GetElapsedTime(setupStarted)) / attemptsLeft;
                if (answerWait < s_minAnswerWait)
                {
                    answerWait = s_minAnswerWait;
                }

                ConnectAttempt result;
                try
                {
                    result = await TryDestinationAsync(config, destination, connecting, request, clientCalledAeTitle, nodeAeTitle, options, answerWait, pipelines, token);
                }
                catch
                {
                    selector.Release(cluster, destination);
                    throw;
                }

                last = result;
                if (result.Outcome == DicomAttemptResult.Accepted)
                {
                    return result.Outcome;
                }

                selector.Release(cluster, destination);
                if (result.Outcome == DicomAttemptResult.Failed)
                {
                    Log.AttemptFailed(logger, association.Id, destination.DestinationId, cluster.ClusterId, result.Failure ?? "failed");
                    metrics.AttemptFailed(association.Listener, cluster.ClusterId, destination.DestinationId);
                    if (result.MarkUnhealthy && passive?.Enabled == true)
                    {
                        healthUpdater.SetPassive(cluster, destination, DestinationHealth.Unhealthy, passive.ReactivationPeriod ?? ProxyDefaults.ReactivationPeriod);
                    }
                }

                return result.Outcome;
            },
            cancellationToken);

        if (outcome is DicomAttemptResult.Accepted or DicomAttemptResult.Rejected)
        {
            return last;
        }

        association.DestinationId = null;
        return new ConnectAttempt(DicomAttemptResult.Exhausted);
    }

    private async Task<ConnectAttempt> TryDestinationAsync(
        Yarp.ReverseProxy.Configuration.ClusterConfig cluster,
        DestinationState destination,
        (Socket Socket, Task Connect)? early,
        byte[] request,
        string clientCalledAeTitle,
        string? nodeAeTitle,
        DicomOptions options,
        TimeSpan answerWait,
        DicomFailoverPipelines.Pipelines pipelines,
        CancellationToken cancellationToken)
    {
        if (!TcpAddress.TryParse(destination.Model.Config.Address, out var address))
        {
            return Failed($"'{destination.Model.Config.Address}' is not a tcp:// or tls:// address", markUnhealthy: false);
        }

        SslClientAuthenticationOptions? tlsOptions = null;
        if (address.Tls)
        {
            try
            {
                tlsOptions = nodeTls.ClientOptions(cluster, destination.Model.Config, address);
            }
            catch (InvalidOperationException ex)
            {
                // Our certificate files, not the node: the destination's health is not touched.
                early?.Socket.Dispose();
                return Failed($"TLS settings: {ex.Message}", markUnhealthy: false);
            }
        }

        var socket = early?.Socket ?? address.NewSocket();
        var connectTimeout = pipelines.Settings.ConnectTimeout;
        var step = "connect";
        SslStream? tls = null;
        try
        {
            if (early is { } started)
            {
                // Connecting since the client connected (EarlyConnect), under the same timeout; the client leaving still ends the wait.
                await started.Connect.WaitAsync(cancellationToken);
            }
            else
            {
                await DicomNodeConnection.ConnectAsync(socket, address, pipelines.Connect, cancellationToken);
            }

            if (tlsOptions is not null)
            {
                step = "TLS handshake";
                tls = await DicomNodeConnection.AuthenticateAsync(socket, tlsOptions, pipelines.Connect, cancellationToken);
                nodeTls.Observe(cluster.ClusterId, destination.DestinationId, tls.RemoteCertificate);
            }
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            return Failed($"{step}: {ex.SocketErrorCode}", markUnhealthy: true);
        }
        catch (Exception ex) when (ex is AuthenticationException or IOException)
        {
            // The node's certificate was refused, no protocol was agreed, or the node closed during the handshake.
            socket.Dispose();
            return Failed($"{step}: {ex.Message}", markUnhealthy: true);
        }
        catch (TimeoutRejectedException) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            return Failed($"{step}: no answer within {connectTimeout}", markUnhealthy: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        var node = new DicomNodeConnection(socket, tls);
        var keep = false;
        try
        {
            var rewritten = nodeAeTitle is not null && !string.Equals(nodeAeTitle, clientCalledAeTitle, StringComparison.Ordinal);
            var toSend = request;
            if (rewritten)
            {
                toSend = (byte[])request.Clone();
                AeTitleRewriter.TryRewriteCalledAeTitle(toSend, nodeAeTitle);
            }

            using var answerTimeout = new CancellationTokenSource(answerWait, time);
            using var answer = CancellationTokenSource.CreateLinkedTokenSource(answerTimeout.Token, cancellationToken);
            (PduReadResult Status, PduHeader Header, byte[]? Pdu) first;
            try
            {
                await node.SendAsync(toSend, answer.Token);
                first = await node.ReadPduAsync(DicomProxySettings.MaxAssociatePduLength(options), answer.Token);
            }
            catch (OperationCanceledException) when (answerTimeout.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                await SendAbortAsync(node, AbortReason.ReasonNotSpecified);
                return Failed(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"no A-ASSOCIATE answer within {answerWait.TotalSeconds:0.#} s"), markUnhealthy: true);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                // The drain deadline (or the client leaving) while the node holds the RQ: A-ABORT, not a bare close
                // (PS3.8 Table 9-10, Sta5: AA-1); not the node's failure.
                await SendAbortAsync(node, AbortReason.ReasonNotSpecified);
                throw;
            }

            if (first.Status is PduReadResult.UnknownType or PduReadResult.TooLarge)
            {
                // PS3.8 Table 9-10 (Sta5) AA-8 and §9.1.4: A-ABORT, not a bare close.
                await SendAbortAsync(node, first.Status == PduReadResult.UnknownType ? AbortReason.UnrecognizedPdu : AbortReason.InvalidPduParameterValue);
            }

            if (first.Status != PduReadResult.Complete)
            {
                return Failed(first.Status == PduReadResult.Incomplete ? "closed before A-ASSOCIATE-AC" : $"malformed answer ({first.Status})", markUnhealthy: true);
            }

            var pdu = first.Pdu!;
            switch (first.Header.Type)
            {
                // PS3.8 §9.3.3: an AC that does not parse is a malformed answer like any other before the AC. The node
                // believes the association established: it gets A-ABORT (Table 9-10 AA-8), the client never sees the AC.
                case PduType.AssociateAccept when AssociateParser.Parse(pdu.AsSpan(PduHeader.Size), isAccept: true, out _) is var acError && acError != AssociateParseError.None:
                    await SendAbortAsync(node, AbortReason.InvalidPduParameterValue);
                    return Failed($"malformed A-ASSOCIATE-AC ({acError})", markUnhealthy: true);
                case PduType.AssociateAccept:
                    if (rewritten)
                    {
                        AeTitleRewriter.TryRewriteCalledAeTitle(pdu, clientCalledAeTitle);
                    }

                    keep = true;
                    return new ConnectAttempt(DicomAttemptResult.Accepted, node, destination, pdu);

                // PS3.8 §9.3.4, Table 9-21: PDU-length 4; byte 8 of the PDU is the result (1 permanent, 2 transient).
                // Any other length or result is a malformed answer, a node failure like any other before the AC.
                case PduType.AssociateReject when first.Header.Length != PduWriter.FixedPduLength - PduHeader.Size:
                    return Failed($"malformed A-ASSOCIATE-RJ (PDU-length {first.Header.Length}, not 4)", markUnhealthy: true);
                case PduType.AssociateReject when pdu[7] == (byte)AssociateRejectResult.RejectedPermanent:
                    return new ConnectAttempt(DicomAttemptResult.Rejected, Answer: pdu);
                case PduType.AssociateReject when pdu[7] == (byte)AssociateRejectResult.RejectedTransient:
                    return Failed($"A-ASSOCIATE-RJ transient: {DescribeReject(pdu)}", markUnhealthy: false);
                case PduType.AssociateReject:
                    return Failed($"malformed A-ASSOCIATE-RJ (result {pdu[7]}, not 1 or 2)", markUnhealthy: true);
                case PduType.Abort when pdu.Length == PduWriter.FixedPduLength:
                    return Failed($"A-ABORT before A-ASSOCIATE-AC: {DescribeAbort((AbortSource)pdu[8], (AbortReason)pdu[9])}", markUnhealthy: true);
                case PduType.Abort:
                    return Failed($"A-ABORT before A-ASSOCIATE-AC (PDU-length {first.Header.Length}, not 4)", markUnhealthy: true);
                default:
                    // PS3.8 Table 9-10 (Sta5, any PDU but AC, RJ or A-ABORT): AA-8, A-ABORT unexpected-PDU.
                    await SendAbortAsync(node, AbortReason.UnexpectedPdu);
                    return Failed($"unexpected {first.Header.Type} before A-ASSOCIATE-AC", markUnhealthy: true);
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or ConnectionResetException or ConnectionAbortedException or AuthenticationException)
        {
            return Failed(node.IsTls ? TlsSessionFailure(ex) : ex.Message, markUnhealthy: true);
        }
        finally
        {
            if (!keep)
            {
                await node.DisposeAsync();
            }
        }
    }

    /// <summary>
    /// Waits for a place at a destination of <paramref name="cluster"/>, every one being at its <c>MaxConcurrent</c>: at
    /// most <paramref name="queueTimeout"/> and no longer than <paramref name="budget"/> (what is left of the client's
    /// ARTIM, less the shortest answer wait, so a refusal still reaches the client in time). Waiting associations are
    /// served in arrival order: a released place wakes the longest waiting one (<see cref="PlaceQueues"/>); the available
    /// destinations are looked at again at least every <see cref="PlaceQueues.Recheck"/>. Null when the wait
    /// ends without a place: the association is refused as when the cluster is full.
    /// </summary>
    private async Task<DestinationState?> WaitForPlaceAsync(DicomAssociation association, ClusterState cluster, HashSet<DestinationState> tried, TimeSpan queueTimeout, TimeSpan budget, CancellationToken cancellationToken)
    {
        var limit = queueTimeout < budget ? queueTimeout : budget;
        if (limit <= TimeSpan.Zero)
        {
            return null;
        }

        var queuedAt = time.GetTimestamp();
        var result = QueueResults.Abandoned;
        metrics.QueueEntered(association.Listener, cluster.ClusterId);
        Log.Queued(logger, association.Id, cluster.ClusterId, limit);
        using var waiter = selector.EnterQueue(cluster);
        try
        {
            while (true)
            {
                // Taken before the pick: a place released after the pick still wakes this wait.
                var released = waiter.Next();
                var candidates = Candidates(cluster, cluster.DestinationsState.AvailableDestinations, tried);
                if (candidates.Count > 0 && selector.PickAndAcquire(cluster, candidates, countFull: false) is { } destination)
                {
                    result = QueueResults.Placed;
                    Log.Placed(logger, association.Id, destination.DestinationId, cluster.ClusterId, time.GetElapsedTime(queuedAt));
                    return destination;
                }

                var left = limit - time.GetElapsedTime(queuedAt);
                if (candidates.Count == 0 || left <= TimeSpan.Zero)
                {
                    result = candidates.Count == 0 ? QueueResults.NoDestination : QueueResults.TimedOut;
                    Log.QueueEnded(logger, association.Id, cluster.ClusterId, time.GetElapsedTime(queuedAt), candidates.Count == 0 ? "no destination of the cluster is available any more" : "no place was freed in time");
                    return null;
                }

                await PlaceQueues.WaitAsync(released, left, time, cancellationToken);
            }
        }
        finally
        {
            metrics.QueueLeft(association.Listener, cluster.ClusterId, result, time.GetElapsedTime(queuedAt));
        }
    }

    /// <summary>The shortest wait for a node's answer to the RQ, however little of the ARTIM budget is left.</summary>
    private static readonly TimeSpan s_minAnswerWait = TimeSpan.FromSeconds(1);

    /// <summary>
    /// The destinations the association's next attempt (or its wait for a place) may go to: those of
    /// <paramref name="available"/> not <paramref name="tried"/>, and once every primary failed it, the cluster's backups
    /// that are up.
    /// </summary>
    private static List<DestinationState> Candidates(ClusterState cluster, IReadOnlyList<DestinationState> available, HashSet<DestinationState> tried)
    {
        var candidates = Untried(available, tried);
        if (tried.Count > 0 && !AvailableDestinationsPolicies.HasPrimary(candidates))
        {
            // Every primary failed this association: its backups, as soon as they are up.
            AvailableDestinationsPolicies.AddBackups(cluster.Model.Config, cluster.DestinationsState.AllDestinations, candidates, tried.Contains);
        }

        return candidates;
    }

    private static List<DestinationState> Untried(IReadOnlyList<DestinationState> available, HashSet<DestinationState> tried)
    {
        var untried = new List<DestinationState>(available.Count);
        for (var i = 0; i < available.Count; i++)
        {
            if (!tried.Contains(available[i]))
            {
                untried.Add(available[i]);
            }
        }

        return untried;
    }

    /// <summary>
    /// Why a TLS session failed after its handshake: with TLS 1.3 a node that refuses ImagingProxy's client certificate
    /// (or has none it trusts) says so only in an alert the first read receives.
    /// </summary>
    private static string TlsSessionFailure(Exception ex)
    {
        var inner = ex.InnerException?.Message;
        var detail = inner is null || inner == ex.Message ? ex.Message : $"{ex.Message} {inner}";
        return $"TLS session ended before A-ASSOCIATE-AC: {detail} {NodeTls.ClientCertificateRefusedHint}";
    }

    private static ConnectAttempt Failed(string failure, bool markUnhealthy)
        => new(DicomAttemptResult.Failed, Failure: failure, MarkUnhealthy: markUnhealthy);

    private readonly record struct ConnectAttempt(
        DicomAttemptResult Outcome,
        DicomNodeConnection? Node = null,
        DestinationState? Destination = null,
        byte[]? Answer = null,
        string? Failure = null,
        bool MarkUnhealthy = false);
}
