using System.Runtime.CompilerServices;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace ImagingProxy.Forwarding;

/// <summary>
/// The answers of a cluster's <c>Retry.StatusCodes</c> metadata that <see cref="HttpRetryStep"/> sends a viewer's read
/// on after (NGINX's <c>proxy_next_upstream http_503</c>, HAProxy's <c>retry-on 503</c>, Envoy's <c>retry_on</c>): a
/// response transform sees the destination's status before anything of it reached the client, and when another attempt
/// is possible it keeps the answer back (its body is not copied, its headers are cleared by the retry) and tells the
/// retry step, through this request's <see cref="RetryableStatus"/> feature, which status it kept back.
/// </summary>
internal sealed class RetryableStatus(FailureStatusCodes codes)
{
    private static readonly ConditionalWeakTable<ClusterConfig, FailureStatusCodes?> s_codes = [];

    /// <summary>The statuses retried after.</summary>
    public FailureStatusCodes Codes { get; } = codes;

    /// <summary>Set by the retry step before each attempt: whether another destination and attempt are left.</summary>
    public bool CanRetry { get; set; }

    /// <summary>The status of the answer the transform kept back in the last attempt, or 0.</summary>
    public int KeptBack { get; set; }

    /// <summary>
    /// Set by the retry step when the route's <c>Timeout</c> fired while an answer was kept back, before the retry: the
    /// request ends as a timeout (<see cref="RequestTimeoutStep"/>: 504), not as a client that went away.
    /// </summary>
    public bool TimedOut { get; set; }

    /// <summary>The cluster's <c>Retry.StatusCodes</c> (validated), read once per cluster configuration; null when none.</summary>
    public static FailureStatusCodes? Of(ClusterConfig cluster)
        => s_codes.TryGetValue(cluster, out var known) ? known : s_codes.GetValue(cluster, static config =>
            FailureStatusCodes.TryParse(config.Metadata?.GetValueOrDefault(MetadataKeys.RetryStatusCodes), out var codes, out _) ? codes : null);

    /// <summary>Adds the response transform to the routes of clusters that set <c>Retry.StatusCodes</c>.</summary>
    public static void Apply(TransformBuilderContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.Cluster is null || Of(context.Cluster) is null)
        {
            return;
        }

        context.AddResponseTransform(static transform =>
        {
            if (transform.HttpContext.Features.Get<RetryableStatus>() is { CanRetry: true } retryable
                && transform.ProxyResponse is { } response && retryable.Codes.Contains((int)response.StatusCode))
            {
                retryable.KeptBack = (int)response.StatusCode;
                transform.SuppressResponseBody = true;
            }

            return ValueTask.CompletedTask;
        });
    }
}
