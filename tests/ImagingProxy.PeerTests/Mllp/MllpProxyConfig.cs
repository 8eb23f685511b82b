using System.Globalization;
using System.Text.Json;
using ImagingProxy.Testing;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>Builds TestProxy configurations with MLLP clusters, one "hl7" listener on port 0 and ordered routes.</summary>
internal static class MllpProxyConfig
{
    /// <param name="clusters">cluster id → destination addresses.</param>
    /// <param name="routes">(MSH-9 pattern, cluster) in order; the keys keep that order.</param>
    /// <param name="ackTimeout">ImagingProxy:Mllp:AckTimeout, or the default.</param>
    /// <param name="maxFrameSize">ImagingProxy:Mllp:MaxFrameSize, or the default.</param>
    /// <param name="passiveHealth">Enable passive health on every cluster.</param>
    /// <param name="metadata">Extra metadata for every cluster (probe settings).</param>
    /// <param name="activeHealth">Enable active health checks every second on every cluster.</param>
    /// <param name="tls">A PEM certificate for the "hl7" listener (MLLP over TLS).</param>
    /// <param name="maxConnections">The "hl7" listener's MaxConnections, or none.</param>
    /// <param name="destinationMetadata">Each destination's metadata (Weight, MaxConcurrent ...), by its place in its cluster's addresses, or none.</param>
    /// <param name="loadBalancingPolicy">Every cluster's LoadBalancingPolicy, or none.</param>
    public static string Create(
        IReadOnlyDictionary<string, string[]> clusters,
        IEnumerable<(string MessageType, string Cluster)> routes,
        string? ackTimeout = null,
        int? maxFrameSize = null,
        bool passiveHealth = false,
        IReadOnlyDictionary<string, string>? metadata = null,
        bool activeHealth = false,
        TestCertificate? tls = null,
        int? maxConnections = null,
        IReadOnlyList<IReadOnlyDictionary<string, string>>? destinationMetadata = null,
        string? loadBalancingPolicy = null)
    {
        var clusterJson = new Dictionary<string, object>();
        foreach (var (id, addresses) in clusters)
        {
            var cluster = new Dictionary<string, object>
            {
                ["Metadata"] = new Dictionary<string, string>(metadata ?? new Dictionary<string, string>()) { ["Protocol"] = "Mllp" },
                ["Destinations"] = addresses.Select((a, i) => (a, i)).ToDictionary(x => $"{id}-node{x.i + 1}", x => destinationMetadata is null ? new { Address = x.a } : (object)new { Address = x.a, Metadata = destinationMetadata[x.i] }),
            };
            if (loadBalancingPolicy is not null)
            {
                cluster["LoadBalancingPolicy"] = loadBalancingPolicy;
            }

            if (passiveHealth || activeHealth)
            {
                cluster["HealthCheck"] = new
                {
                    Passive = new { Enabled = passiveHealth, ReactivationPeriod = "00:01:00" },
                    Active = new { Enabled = activeHealth, Interval = "00:00:01", Timeout = "00:00:05" },
                };
            }

            clusterJson[id] = cluster;
        }

        var mllp = new Dictionary<string, object>
        {
            ["Listeners"] = tls is not null
                ? new { hl7 = (object)new { Address = "127.0.0.1", Port = 0, Tls = new { Path = tls.CertificatePath, tls.KeyPath } } }
                : maxConnections is { } max
                    ? new { hl7 = (object)new { Address = "127.0.0.1", Port = 0, MaxConnections = max } }
                    : new { hl7 = (object)new { Address = "127.0.0.1", Port = 0 } },
            ["Routes"] = routes.Select((r, i) => (r, i)).ToDictionary(x => x.i.ToString(CultureInfo.InvariantCulture), x => (object)new { x.r.MessageType, x.r.Cluster }),
        };
        if (ackTimeout is not null)
        {
            mllp["AckTimeout"] = ackTimeout;
        }

        if (maxFrameSize is not null)
        {
            mllp["MaxFrameSize"] = maxFrameSize.Value;
        }

        return TestProxy.Config(JsonSerializer.Serialize(clusterJson), JsonSerializer.Serialize(new { Mllp = mllp }));
    }
}
