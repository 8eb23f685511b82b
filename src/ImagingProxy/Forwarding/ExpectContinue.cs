using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Uploads to HTTP destinations with <c>Expect: 100-continue</c> (cluster metadata <c>ExpectContinue</c>): the body is
/// sent once the server said <c>100 Continue</c>. A server that refuses an upload from its headers alone (401/403 to a
/// STOW-RS, 413 to a study over its limit) and closes without reading the body resets the connection under the body
/// being sent: the client gets 502 instead of the server's answer, and YARP's passive health counts a transport failure
/// against a healthy server. With the header the refusal comes before any body byte and is relayed as it is, when it
/// comes within .NET's 1 s <c>Expect100ContinueTimeout</c> (after that the body is sent anyway).
/// </summary>
/// <remarks>
/// Off by default (<c>Never</c>): a server that ignores the header gets the body only after .NET's 1 s
/// <c>Expect100ContinueTimeout</c>, and Orthanc (Debian's, checked in session 15) is one: it waits for the body without
/// answering <c>100 Continue</c>. <c>Large</c> asks for bodies of <see cref="LargeBody"/> or more and bodies of unknown
/// length (chunked), as curl does, so that a small SOAP query or a one-instance STOW-RS does not wait a round trip more;
/// <c>Always</c> asks for every body. A request that carries its own <c>Expect: 100-continue</c> keeps it in every mode.
/// </remarks>
public static class ExpectContinue
{
    /// <summary>Cluster metadata value: bodies of <see cref="LargeBody"/> or more, or of unknown length.</summary>
    public const string Large = "Large";

    /// <summary>Cluster metadata value: every request with a body.</summary>
    public const string Always = "Always";

    /// <summary>Cluster metadata value: never added (default).</summary>
    public const string Never = "Never";

    /// <summary>The body size from which <see cref="Large"/> asks for <c>100 Continue</c>: 1 MiB, curl's threshold.</summary>
    public const long LargeBody = 1024 * 1024;

    /// <summary>True when <paramref name="value"/> is a valid <c>ExpectContinue</c> metadata value (or absent).</summary>
    public static bool IsValid(string? value)
        => string.IsNullOrEmpty(value) || value.Equals(Never, StringComparison.OrdinalIgnoreCase) || Minimum(value) is not null;

    /// <summary>
    /// Adds the request transform to a route whose cluster asks for it, and to the XDS route, whose requests go to the
    /// registry or the repository cluster (<see cref="XdsRoutingStep"/>): the cluster a request goes to decides.
    /// </summary>
    public static void Apply(TransformBuilderContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var xds = context.Route.Metadata?.ContainsKey(Configuration.MetadataKeys.XdsRoute) == true;
        if (!xds && Minimum(context.Cluster?.Metadata) is null)
        {
            return;
        }

        context.AddRequestTransform(static transform =>
        {
            var minimum = Minimum(transform.HttpContext.GetReverseProxyFeature().Cluster.Config.Metadata);
            var request = transform.HttpContext.Request;
            var length = request.ContentLength;
            if (minimum is { } smallest && transform.ProxyRequest.Content is not null
                && (length >= smallest || (length is null && transform.HttpContext.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true)))
            {
                transform.ProxyRequest.Headers.ExpectContinue = true;
            }

            return ValueTask.CompletedTask;
        });
    }

    /// <summary>The smallest body a cluster's <c>ExpectContinue</c> asks first for, or null for none (<c>Never</c>, absent).</summary>
    private static long? Minimum(IReadOnlyDictionary<string, string>? metadata)
        => metadata is not null && metadata.TryGetValue(Configuration.MetadataKeys.ExpectContinue, out var value) ? Minimum(value) : null;

    private static long? Minimum(string value)
        => value.Equals(Always, StringComparison.OrdinalIgnoreCase) ? 1
            : value.Equals(Large, StringComparison.OrdinalIgnoreCase) ? LargeBody
            : null;
}
