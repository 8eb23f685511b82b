using System.Globalization;
using ImagingProxy.Configuration;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Forwarder;

namespace ImagingProxy.Forwarding;

/// <summary>
/// YARP's client factory for HTTP clusters, plus cluster metadata <c>ExpectContinueTimeout</c>: how long an upload sent
/// with <c>Expect: 100-continue</c> (<see cref="ExpectContinue"/>) waits for the server before its body goes anyway.
/// .NET's 1 s suits a server that answers at once; one that takes longer to refuse (an authorisation that asks another
/// service) got the body under its refusal, and the client a 502 instead of its 401/403. A cluster whose value changes
/// on reload gets a new client.
/// </summary>
internal sealed class ProxyHttpClientFactory(ILogger<ForwarderHttpClientFactory> logger) : ForwarderHttpClientFactory(logger)
{
    protected override bool CanReuseOldClient(ForwarderHttpClientContext context)
        => base.CanReuseOldClient(context) && Timeout(context.OldMetadata) == Timeout(context.NewMetadata);

    protected override void ConfigureHandler(ForwarderHttpClientContext context, SocketsHttpHandler handler)
    {
        base.ConfigureHandler(context, handler);
        if (Timeout(context.NewMetadata) is { } timeout)
        {
            handler.Expect100ContinueTimeout = timeout;
        }
    }

    /// <summary>The cluster's <c>ExpectContinueTimeout</c> (validated), or null for .NET's default.</summary>
    internal static TimeSpan? Timeout(IReadOnlyDictionary<string, string>? metadata)
        => metadata?.GetValueOrDefault(MetadataKeys.ExpectContinueTimeout) is { } text
            && TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var value) && value > TimeSpan.Zero
                ? value
                : null;
}
