using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Uploads to HTTP destinations with <c>Expect: 100-continue</c> (cluster metadata <c>ExpectContinue</c>): the body is
/// sent once the server said <c>100 Continue</c>. A server that refuses an upload from its headers alone (401/403 to a
/// STOW-RS, 413 to a study over its limit) and closes without reading the body resets the connection under the body
/// being sent: the client gets 502 instead of the server's answer, and YARP's passive health counts a transport failure
/// against a healthy server. With the header the refusal comes before any body byte and is relayed as it is.
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
        => string.IsNullOrEmpty(value) || value.Equals(Large, StringComparison.OrdinalIgnoreCase)
            || value.Equals(Always, StringComparison.OrdinalIgnoreCase) || value.Equals(Never, StringComparison.OrdinalIgnoreCase);

    /// <summary>Adds the request transform to a route of an HTTP cluster, per its cluster's <c>ExpectContinue</c>.</summary>
    public static void Apply(TransformBuilderContext context)
    {
        var value = context.Cluster?.Metadata?.GetValueOrDefault(Configuration.MetadataKeys.ExpectContinue);
        long minimum;
        if (string.Equals(value, Always, StringComparison.OrdinalIgnoreCase))
        {
            minimum = 1;
        }
        else if (string.Equals(value, Large, StringComparison.OrdinalIgnoreCase))
        {
            minimum = LargeBody;
        }
        else
        {
            return;
        }

        context.AddRequestTransform(transform =>
        {
            var request = transform.HttpContext.Request;
            var length = request.ContentLength;
            if (transform.ProxyRequest.Content is not null
                && (length >= minimum || (length is null && transform.HttpContext.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true)))
            {
                transform.ProxyRequest.Headers.ExpectContinue = true;
            }

            return ValueTask.CompletedTask;
        });
    }
}
