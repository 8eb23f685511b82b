using System.Globalization;
using ImagingProxy.Configuration;
using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Sends a viewer's GET, HEAD or OPTIONS request (no body) to another destination of its cluster when the chosen one
/// failed before any of its answer reached the client: it refused or reset the connection, or sent no response
/// headers within the cluster's <c>HttpRequest:ActivityTimeout</c> (YARP's <see cref="ForwarderError.Request"/> and
/// <see cref="ForwarderError.RequestTimedOut"/>). Without it, every request that met a PACS web node that had just died
/// got 502 until a health check took the node out. What NGINX (<c>proxy_next_upstream error timeout</c>) and HAProxy
/// (<c>retries</c>, <c>option redispatch</c>) do; YARP has no retries of its own.
/// </summary>
/// <remarks>
/// <para>
/// Only requests that are safe to send twice: idempotent methods without a body. A POST (STOW-RS, every XDS
/// transaction) is never sent again: the first server may have stored it. A response already started is never
/// replaced, and a client that went away is not retried for.
/// </para>
/// <para>
/// Each attempt runs the rest of YARP's pipeline again (affinity, load balancing, passive health: the failed
/// destination is counted as a failure) over the destinations not tried yet, at most the cluster metadata
/// <c>Retry.MaxAttempts</c> attempts in all (default 3; 1 turns retries off). Each retry is logged (event 413) and
/// counted (<c>imagingproxy.http.retries</c>, by the destination that failed). When every attempt fails the client gets
/// the last failure's answer (502, or 504 for a timeout).
/// </para>
/// </remarks>
internal sealed partial class HttpRetryStep(HttpProxyMetrics metrics, ILogger<HttpRetryStep> logger)
{
    /// <summary>Attempts per request (the first included) when the cluster does not set <c>Retry.MaxAttempts</c>.</summary>
    public const int DefaultMaxAttempts = 3;

    /// <summary>The most attempts <c>Retry.MaxAttempts</c> may ask for.</summary>
    public const int MaxMaxAttempts = 10;

    public async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        var feature = context.GetReverseProxyFeature();
        var candidates = feature.AvailableDestinations;
        var maxAttempts = MaxAttempts(feature.Cluster.Config);
        if (maxAttempts < 2 || candidates.Count < 2 || !CanBeSentAgain(context.Request))
        {
            await next();
            return;
        }

        List<DestinationState>? untried = null;
        for (var attempt = 1; ; attempt++)
        {
            await next();
            var error = context.GetForwarderErrorFeature();
            var failed = feature.ProxiedDestination;
            if (error is null || failed is null || !IsRetryable(error.Error) || context.Response.HasStarted
                || context.RequestAborted.IsCancellationRequested || attempt >= maxAttempts)
            {
                return;
            }

            untried ??= new List<DestinationState>(candidates);
            untried.Remove(failed);
            if (untried.Count == 0)
            {
                return;
            }

            var cluster = feature.Cluster.Config.ClusterId;
            metrics.Retried(cluster, failed.DestinationId, error.Error);
            if (logger.IsEnabled(LogLevel.Warning))
            {
                Log.Retrying(logger, context.Request.Method, context.Request.Path.Value ?? "/", failed.DestinationId, cluster, error.Error, Describe(error.Exception), attempt + 1, maxAttempts);
            }

            // Nothing reached the client: the next attempt starts from a clean response, as the first did.
            context.Features.Set<IForwarderErrorFeature>(null);
            context.Response.Clear();
            feature.AvailableDestinations = untried.ToArray();
        }
    }

    /// <summary>The cluster's <c>Retry.MaxAttempts</c> metadata (validated), else <see cref="DefaultMaxAttempts"/>.</summary>
    public static int MaxAttempts(ClusterConfig cluster)
        => cluster.Metadata is { } metadata && metadata.TryGetValue(MetadataKeys.RetryMaxAttempts, out var text)
            && int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value)
                ? value
                : DefaultMaxAttempts;

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

    /// <summary>Failures before the destination's response began: connect, send of the headers, wait for the response headers.</summary>
    private static bool IsRetryable(ForwarderError error) => error is ForwarderError.Request or ForwarderError.RequestTimedOut;

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
    }
}
