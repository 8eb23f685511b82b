using System.Diagnostics;
using System.Globalization;
using ImagingProxy.Balancing;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;
using Yarp.ReverseProxy.SessionAffinity;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Sends a viewer's GET, HEAD or OPTIONS request (no body) to another destination of its cluster when the chosen one
/// failed before any of its answer reached the client. By default only when the request never reached the server: the
/// connection was refused, could not be opened in time, or its TLS handshake failed (what HAProxy retries by default,
/// <c>retry-on conn-failure</c>). Cluster metadata <c>Retry.On</c> = <c>BeforeResponse</c> also retries a server that
/// took the request and then reset the connection or sent no response headers within the cluster's
/// <c>HttpRequest:ActivityTimeout</c> (NGINX's <c>proxy_next_upstream error timeout</c>); not the default, because a
/// request that makes a server fail (an expensive or malformed query) would then go to every server in turn.
/// YARP has no retries of its own: without this, every request that met a PACS web node that had just died got 502
/// until a health check took the node out. Cluster metadata <c>Retry.StatusCodes</c> also retries after an answer with
/// one of its statuses (say 503 from a node in maintenance): the answer is kept back before any of it reaches the client
/// (<see cref="RetryableStatus"/>) while another attempt is possible; the last attempt's answer goes through whole.
/// Once every primary the request could go to failed it, the cluster's backups that are up are tried too (destination
/// metadata <c>Backup</c>, as NGINX tries its backups within a request).
/// </summary>
/// <remarks>
/// <para>
/// Only requests that are safe to send twice: idempotent methods without a body. A POST (STOW-RS, every XDS
/// transaction) is never sent again: the first server may have stored it. A response already started is never
/// replaced, and a client that went away is not retried for. Nor is a client that session affinity pins with the
/// strict <c>FailurePolicy</c> <c>Return503Error</c> (<see cref="PinnedStrictly"/>).
/// </para>
/// <para>
/// Each attempt runs the rest of YARP's pipeline again (affinity, load balancing, passive health: the failed
/// destination is counted as a failure) over the destinations not tried yet, at most the cluster metadata
/// <c>Retry.MaxAttempts</c> attempts in all (default 3; 1 turns retries off). What the failed attempt left is undone
/// first: the forwarder's error, the response (status and headers: no step before the proxy sets any), the items the
/// inner steps added (YARP's affinity marker, so that the destination that answers sets the client's affinity cookie),
/// and the destination tags of YARP's <c>proxy.forwarder</c> activity (it gets an <c>imagingproxy.retry</c> event per
/// retry instead). Each retry is logged (event 413) and counted (<c>imagingproxy.http.retries</c>, by the destination
/// that failed). When every attempt fails the client gets the last failure's answer (502, or 504 for a timeout).
/// </para>
/// </remarks>
internal sealed partial class HttpRetryStep(HttpProxyMetrics metrics, ILogger<HttpRetryStep> logger, DestinationLimits? limits = null)
{
    private readonly DestinationLimits _limits = limits ?? DestinationLimits.Unmetered;

    /// <summary>Attempts per request (the first included) when the cluster does not set <c>Retry.MaxAttempts</c>.</summary>
    public const int DefaultMaxAttempts = 3;

    /// <summary>The most attempts <c>Retry.MaxAttempts</c> may ask for.</summary>
    public const int MaxMaxAttempts = 10;

    /// <summary><c>Retry.On</c>: retry only requests that never reached the server (the default).</summary>
    public const string OnConnect = "Connect";

    /// <summary><c>Retry.On</c>: also retry a server that failed after taking the request, before its response began.</summary>
    public const string OnBeforeResponse = "BeforeResponse";

    private static readonly string[] s_destinationTags = ["proxy.route_id", "proxy.cluster_id", "proxy.destination_id"];

    /// <summary>A request that cannot be retried passes straight through, with no async level of its own.</summary>
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var feature = context.GetReverseProxyFeature();
        return !CanBeSentAgain(context.Request) || (feature.AvailableDestinations.Count < 2 && !BackupsWithinRequest(feature.Cluster.Config)) || MaxAttempts(feature.Cluster.Config) is not (> 1 and var maxAttempts)
            || PinnedStrictly(context.Request, feature.Cluster.Config)
            ? next(context)
            : ForwardAsync(context, next, feature, maxAttempts);
    }

    private async Task ForwardAsync(HttpContext context, RequestDelegate next, IReverseProxyFeature feature, int maxAttempts)
    {
        var candidates = feature.AvailableDestinations;
        var beforeResponse = string.Equals(feature.Cluster.Config.Metadata?.GetValueOrDefault(MetadataKeys.RetryOn), OnBeforeResponse, StringComparison.OrdinalIgnoreCase);
        // The items before the first attempt (usually none: then every item after a failed attempt is one it added).
        var items = context.Items.Count == 0 ? null : new HashSet<object>(context.Items.Keys);
        RetryableStatus? retryable = null;
        if (RetryableStatus.Of(feature.Cluster.Config) is { } codes)
        {
            retryable = new RetryableStatus(codes);
            context.Features.Set(retryable);
        }

        var config = feature.Cluster.Config;
        var backups = BackupsWithinRequest(config);
        List<DestinationState>? untried = null;
        List<DestinationState>? tried = null;
        for (var attempt = 1; ; attempt++)
        {
            // The backups a next attempt may go to, read once before this attempt (up, not drained, not tried, not full) and
            // kept: an answer kept back on their account is then never dropped because one went down meanwhile.
            var spare = backups ? SpareBackups(config, feature.AllDestinations, feature.AvailableDestinations, tried) : null;
            if (retryable is not null)
            {
                // The destination this attempt goes to is one of those available: another is left when there are two, or
                // when a spare backup is (the next attempt goes to it once no primary is left).
                retryable.CanRetry = attempt < maxAttempts && (feature.AvailableDestinations.Count >= 2 || spare is { Count: > 0 });
                retryable.KeptBack = 0;
            }

            await next(context);
            var error = context.GetForwarderErrorFeature();
            var failed = feature.ProxiedDestination;
            var keptBack = retryable?.KeptBack ?? 0;
            if (failed is null || context.Response.HasStarted || context.RequestAborted.IsCancellationRequested || attempt >= maxAttempts
                || (keptBack == 0 && (error is null || !IsRetryable(error, beforeResponse))))
            {
                if (keptBack != 0)
                {
                    DropKeptBack(context, retryable!, keptBack);
                }

                return;
            }

            untried ??= new List<DestinationState>(candidates);
            untried.Remove(failed);
            if (spare is not null)
            {
                // Every primary this request could go to failed it: the spare backups, as NGINX tries its backups.
                (tried ??= []).Add(failed);
                if (!AvailableDestinationsPolicies.HasPrimary(untried))
                {
                    foreach (var backup in spare)
                    {
                        if (!untried.Contains(backup))
                        {
                            untried.Add(backup);
                        }
                    }
                }
            }

            if (untried.Count == 0)
            {
                if (keptBack != 0)
                {
                    DropKeptBack(context, retryable!, keptBack);
                }

                return;
            }

            var cluster = feature.Cluster.Config.ClusterId;
            string errorType, cause;
            if (keptBack != 0)
            {
                errorType = "Status" + keptBack.ToString(CultureInfo.InvariantCulture);
                cause = "answered " + keptBack.ToString(CultureInfo.InvariantCulture);
                Log.RetryingAfterStatus(logger, context.Request.Method, LoggedRequest.Path(context.Request), failed.DestinationId, cluster, keptBack, attempt + 1, maxAttempts);
            }
            else
            {
                errorType = error!.Error.ToString();
                cause = Describe(error.Exception);
                Log.Retrying(logger, context.Request.Method, LoggedRequest.Path(context.Request), failed.DestinationId, cluster, error.Error, cause, attempt + 1, maxAttempts);
            }

            metrics.Retried(cluster, failed.DestinationId, errorType);

            // Nothing reached the client: the next attempt starts as the first did.
            context.Features.Set<IForwarderErrorFeature>(null);
            context.Response.Clear();
            ForgetItemsSince(context.Items, items);
            RetagActivity(failed.DestinationId, errorType, cause);
            feature.AvailableDestinations = untried.ToArray();
        }
    }

    /// <summary>
    /// An answer kept back for a retry that does not follow after all: its status and headers, whose body will never
    /// come, are not sent. A route <c>Timeout</c> that fired meanwhile ends the request as a timeout (504, through
    /// <see cref="RequestTimeoutStep"/>); otherwise (the client went away) it ends as YARP ends an abandoned one, with 502.
    /// </summary>
    private void DropKeptBack(HttpContext context, RetryableStatus retryable, int keptBack)
    {
        retryable.TimedOut = context.Features.Get<IHttpRequestTimeoutFeature>()?.RequestTimeoutToken.IsCancellationRequested == true;
        var status = retryable.TimedOut ? StatusCodes.Status504GatewayTimeout : StatusCodes.Status502BadGateway;
        Log.KeptBackNotRetried(logger, context.Request.Method, LoggedRequest.Path(context.Request), keptBack,
            retryable.TimedOut ? "the route Timeout fired" : "the client went away, or no destination was left", status);
        if (!context.Response.HasStarted)
        {
            context.Response.Clear();
            context.Response.StatusCode = status;
        }
    }

    /// <summary>
    /// True when a read may go to the cluster's backups once its primaries failed it: the cluster has backups, and its
    /// session affinity is not the strict kind (<c>Return503Error</c>), where a backup's answer would pin the client to a
    /// destination that leaves the rotation as soon as the primaries are back.
    /// </summary>
    private static bool BackupsWithinRequest(ClusterConfig cluster)
        => AvailableDestinationsPolicies.HasBackups(cluster)
            && !(cluster.SessionAffinity is { Enabled: true } affinity
                && string.Equals(affinity.FailurePolicy, SessionAffinityConstants.FailurePolicies.Return503Error, StringComparison.OrdinalIgnoreCase));

    /// <summary>The cluster's backups that are up (health, drain), not tried, not among <paramref name="available"/> and below their <c>MaxConcurrent</c>.</summary>
    private List<DestinationState> SpareBackups(ClusterConfig config, IReadOnlyList<DestinationState> all, IReadOnlyList<DestinationState> available, List<DestinationState>? tried)
    {
        var spare = new List<DestinationState>();
        var limits = _limits;
        AvailableDestinationsPolicies.AddBackups(config, all, spare, d => tried?.Contains(d) == true
            || AvailableDestinationsPolicies.Includes(available, d) || limits.AtLimit(d, d.ConcurrentRequestCount));
        return spare;
    }

    /// <summary>The cluster's <c>Retry.MaxAttempts</c> metadata (validated, read as the validator reads it), else <see cref="DefaultMaxAttempts"/>.</summary>
    public static int MaxAttempts(ClusterConfig cluster)
        => cluster.Metadata is { } metadata && metadata.TryGetValue(MetadataKeys.RetryMaxAttempts, out var text)
            && int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value)
                ? value
                : DefaultMaxAttempts;

    /// <summary>
    /// True when the cluster's session affinity must not move a client (<c>FailurePolicy</c> <c>Return503Error</c>) and
    /// the request carries its affinity key: the operator wants such a client served by its own destination or not at
    /// all, so its failure is answered as it is (YARP's 502) instead of a retry that the affinity step refuses with 503.
    /// </summary>
    internal static bool PinnedStrictly(HttpRequest request, ClusterConfig cluster)
    {
        if (cluster.SessionAffinity is not { Enabled: true, AffinityKeyName: { Length: > 0 } key } affinity
            || !string.Equals(affinity.FailurePolicy, SessionAffinityConstants.FailurePolicies.Return503Error, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        return string.Equals(affinity.Policy, SessionAffinityConstants.Policies.CustomHeader, StringComparison.OrdinalIgnoreCase)
            ? request.Headers.ContainsKey(key)
            : request.Cookies.ContainsKey(key);
    }

    /// <summary>GET, HEAD or OPTIONS without a body: the same request can go to another server.</summary>
    internal static bool CanBeSentAgain(HttpRequest request)
    {
        if (!HttpMethods.IsGet(request.Method) && !HttpMethods.IsHead(request.Method) && !HttpMethods.IsOptions(request.Method))
        {
            return false;
        }

        return request.HttpContext.Features.Get<IHttpRequestBodyDetectionFeature>() is { } body
            ? !body.CanHaveBody
            : request.ContentLength is null or 0 && !request.Headers.ContainsKey("Transfer-Encoding");
    }

    /// <summary>
    /// A failure the request may be sent on after: it never reached the server (connect refused or timed out, name
    /// resolution, TLS handshake), or, with <paramref name="beforeResponse"/>, any failure before the response headers (YARP's
    /// <see cref="ForwarderError.Request"/>, <see cref="ForwarderError.RequestTimedOut"/>).
    /// </summary>
    internal static bool IsRetryable(IForwarderErrorFeature error, bool beforeResponse)
    {
        if (error.Error is not (ForwarderError.Request or ForwarderError.RequestTimedOut))
        {
            return false;
        }

        if (beforeResponse)
        {
            return true;
        }

        for (var exception = error.Exception; exception is not null; exception = exception.InnerException)
        {
            // SocketsHttpHandler's ConnectTimeout (YARP sets 15 s) ends the wait for a connection that never opened (a server
            // powered off, a firewall that drops packets) with a TaskCanceledException around a TimeoutException, not an
            // HttpRequestException; nothing else in the handler throws a TimeoutException (HttpClient.Timeout is not used).
            if (exception is HttpRequestException { HttpRequestError: HttpRequestError.ConnectionError or HttpRequestError.NameResolutionError or HttpRequestError.SecureConnectionError }
                || (exception is TimeoutException && error.Exception is OperationCanceledException))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>Removes the items the inner steps added during the failed attempt (YARP's affinity marker among them).</summary>
    private static void ForgetItemsSince(IDictionary<object, object?> items, HashSet<object>? before)
    {
        if (before is null)
        {
            items.Clear();
            return;
        }

        List<object>? added = null;
        foreach (var key in items.Keys)
        {
            if (!before.Contains(key))
            {
                (added ??= []).Add(key);
            }
        }

        if (added is not null)
        {
            foreach (var key in added)
            {
                items.Remove(key);
            }
        }
    }

    /// <summary>
    /// YARP's <c>proxy.forwarder</c> activity (current here) gets its route, cluster and destination tags again from the
    /// next attempt (YARP adds them, it does not replace them): the failed destination's go, an event records it.
    /// </summary>
    private static void RetagActivity(string destination, string errorType, string cause)
    {
        if (Activity.Current is not { Source.Name: "Yarp.ReverseProxy" } activity)
        {
            return;
        }

        foreach (var tag in s_destinationTags)
        {
            activity.SetTag(tag, null);
        }

        activity.AddEvent(new ActivityEvent("imagingproxy.retry", tags: new ActivityTagsCollection
        {
            ["proxy.destination_id"] = destination,
            ["error.type"] = errorType,
            ["exception.message"] = cause,
        }));
    }

    /// <summary>The innermost exception's message (a refused connection, a reset), without the stack.</summary>
    private static string Describe(Exception? exception)
    {
        if (exception is null)
        {
            return "no detail";
        }

        while (exception.InnerException is { } inner)
        {
            exception = inner;
        }

        return exception.Message;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 413, Level = LogLevel.Warning, Message = "Request {Method} {Path}: destination '{Destination}' of cluster '{Cluster}' failed before answering ({Error}: {Cause}); sent to another destination, attempt {Attempt} of at most {MaxAttempts}.")]
        public static partial void Retrying(ILogger logger, string method, string path, string destination, string cluster, ForwarderError error, string cause, int attempt, int maxAttempts);

        [LoggerMessage(EventId = 416, Level = LogLevel.Warning, Message = "Request {Method} {Path}: destination '{Destination}' of cluster '{Cluster}' answered {StatusCode}, a status in Retry.StatusCodes; sent to another destination, attempt {Attempt} of at most {MaxAttempts}.")]
        public static partial void RetryingAfterStatus(ILogger logger, string method, string path, string destination, string cluster, int statusCode, int attempt, int maxAttempts);

        [LoggerMessage(EventId = 417, Level = LogLevel.Information, Message = "Request {Method} {Path}: the answer {StatusCode} was kept back for a retry that does not follow ({Cause}); ended with {EndStatus}.")]
        public static partial void KeptBackNotRetried(ILogger logger, string method, string path, int statusCode, string cause, int endStatus);
    }
}
