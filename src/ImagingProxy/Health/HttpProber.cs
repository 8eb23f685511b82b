using System.Net;
using ImagingProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Health;

/// <summary>
/// HTTP probe: <c>GET {Health ?? Address}{Path}{Query}</c> through the cluster's own HttpClient, as YARP's monitor
/// does, plus optional headers from cluster metadata (e.g. <c>Accept: application/dicom+json</c> for a QIDO probe).
/// Healthy on 2xx.
/// </summary>
internal sealed class HttpProber : IDestinationProber
{
    public ClusterProtocol Protocol => ClusterProtocol.Http;

    public async Task<ProbeResult> ProbeAsync(ClusterState cluster, DestinationState destination, CancellationToken cancellationToken)
    {
        var config = cluster.Model.Config;
        var active = config.HealthCheck?.Active;
        var baseAddress = destination.Model.Config.Health ?? destination.Model.Config.Address;
        var uri = new Uri(baseAddress.TrimEnd('/') + (active?.Path ?? "") + (active?.Query ?? ""), UriKind.Absolute);
        using var request = new HttpRequestMessage(HttpMethod.Get, uri)
        {
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
        };
        if (config.Metadata is not null && config.Metadata.TryGetValue(MetadataKeys.ProbeHeaders, out var headers))
        {
            foreach (var line in headers.Split([';', '\n'], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            {
                var colon = line.IndexOf(':', StringComparison.Ordinal);
                if (colon > 0)
                {
                    request.Headers.TryAddWithoutValidation(line[..colon].Trim(), line[(colon + 1)..].Trim());
                }
            }
        }

        try
        {
            using var response = await cluster.Model.HttpClient.SendAsync(request, cancellationToken);
            var code = (int)response.StatusCode;
            return code is >= 200 and < 300
                ? ProbeResult.Success($"HTTP {code}")
                : ProbeResult.Failure(code is 401 or 403 ? $"HTTP {code} (up, but credentials refused)" : $"HTTP {code}");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return ProbeResult.Failure("timeout");
        }
        catch (Exception ex)
        {
            return ProbeResult.Failure($"{ex.GetType().Name}: {ex.Message}");
        }
    }
}
