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
            foreach (var (name, value) in ParseHeaders(headers))
            {
                request.Headers.TryAddWithoutValidation(name, value);
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

    /// <summary>
    /// The headers of <c>HealthCheck.Headers</c>: one per line, or several on a line separated by <c>;</c>. A <c>;</c> starts
    /// a new header only when a header name and a colon follow it; otherwise it belongs to the value, as in
    /// <c>Accept: multipart/related; type="application/dicom"</c> (a WADO-RS probe), which was cut to
    /// <c>Accept: multipart/related</c>. A piece without a header name is ignored, and so is a <c>;</c> ending a line.
    /// </summary>
    internal static List<KeyValuePair<string, string>> ParseHeaders(string text)
    {
        var headers = new List<KeyValuePair<string, string>>();
        foreach (var line in text.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            var start = 0;
            for (var i = 0; i <= line.Length; i++)
            {
                if (i < line.Length && (line[i] != ';' || HeaderName(line.AsSpan(i + 1)) is null))
                {
                    continue;
                }

                var piece = line.AsSpan(start, i - start);
                if (HeaderName(piece) is { } name)
                {
                    headers.Add(new(name, piece[(piece.IndexOf(':') + 1)..].TrimEnd("; \t").Trim().ToString()));
                }

                start = i + 1;
            }
        }

        return headers;
    }

    /// <summary>The header name <paramref name="piece"/> starts with (an RFC 9110 token before a colon), or null.</summary>
    private static string? HeaderName(ReadOnlySpan<char> piece)
    {
        var colon = piece.IndexOf(':');
        if (colon <= 0)
        {
            return null;
        }

        var name = piece[..colon].Trim();
        if (name.IsEmpty)
        {
            return null;
        }

        foreach (var c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && "!#$%&'*+-.^_`|~".IndexOf(c) < 0)
            {
                return null;
            }
        }

        return name.ToString();
    }
}
