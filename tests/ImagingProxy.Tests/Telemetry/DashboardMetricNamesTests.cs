using System.Diagnostics.Metrics;
using System.Net.Sockets;
using System.Text;
using ImagingProxy.Testing;
using ImagingProxy.Tests.Dicom;

namespace ImagingProxy.Tests.Telemetry;

/// <summary>
/// Every metric the Grafana dashboard and the alert rules query is one the proxy really exports. The proxy runs
/// in-process with HTTP, XDS, DICOM and HL7 traffic (loopback fakes for the nodes); names come from its /metrics and,
/// for instruments without data yet (e.g. retries), from the instrument definitions by the exporter's naming rules —
/// rules checked here against the scrape, so a wrong rule or a renamed instrument fails instead of passing.
/// </summary>
public sealed class DashboardMetricNamesTests
{
    /// <summary>Series Prometheus itself makes for every target.</summary>
    private static readonly HashSet<string> s_prometheusSeries = ["up"];

    /// <summary>Families the traffic below must produce; a missing one means the traffic (or an instrument) broke.</summary>
    private static readonly string[] s_expectedFromTraffic =
    [
        "imagingproxy_http_requests_total", "imagingproxy_http_request_duration_seconds", "imagingproxy_xds_transactions_total",
        "imagingproxy_health_probes_total", "imagingproxy_health_probe_duration_seconds", "imagingproxy_health_transitions_total",
        "imagingproxy_destination_health", "imagingproxy_destination_available", "imagingproxy_destination_weight", "imagingproxy_cluster_destinations_available",
        "imagingproxy_dicom_associations_total", "imagingproxy_dicom_associations_started_total", "imagingproxy_dicom_associations_active", "imagingproxy_dicom_association_setup_duration_seconds",
        "imagingproxy_dicom_dimse_operations_total", "imagingproxy_dicom_bytes_total",
        "imagingproxy_hl7_messages_total", "imagingproxy_hl7_ack_duration_seconds", "imagingproxy_hl7_naks_total",
        "imagingproxy_hl7_frames_rejected_total", "imagingproxy_hl7_connections_active",
        "kestrel_active_connections", "dotnet_process_cpu_time_seconds_total", "dotnet_process_memory_working_set_bytes",
    ];

    [Theory]
    [InlineData("histogram_quantile(0.95, sum by (le, route) (rate(imagingproxy_http_request_duration_seconds_bucket{instance=~\"$instance\",destination=~\"$destination|none\"}[$__rate_interval])))", "imagingproxy_http_request_duration_seconds")]
    [InlineData("count(max by (cluster) (imagingproxy_cluster_destinations_available{cluster=~\"$cluster\"}) == 0) or vector(0)", "imagingproxy_cluster_destinations_available")]
    [InlineData("sum by (instance, listener) (rate(a_total[5m])) / (sum by (instance, listener) (rate(b_total[5m])) or sum(rate(a_total[5m])) * 0) > 0.05", "a_total b_total")]
    [InlineData("up{job=~\"imagingproxy.*\"} == 0", "up")]
    [InlineData("max by (instance) (x{health_state=\"Unhealthy\"}) == 1 and on (instance) y_count offset 5m", "x y")]
    [InlineData("sum without (le) (rate(metric_sum[1m])) / ignoring (a) group_left (b) rate(metric_count[1m:10s])", "metric")]
    public void PromQL_metric_names_are_extracted(string expr, string expected)
        => Assert.Equal(expected.Split(' ').Order(), PromQlMetricNames.Extract(expr).Order());

    [Fact]
    public void Rule_expressions_are_read_from_plain_and_block_scalars()
    {
        const string Yaml = """
            groups:
              - name: g
                rules:
                  - alert: One
                    expr: up == 0
                    for: 1m
                  - alert: Two
                    expr: |
                      sum(rate(a_total[5m]))
                        / sum(rate(b_total[5m]))
                    labels:
                      severity: warning
            """;

        var found = PromQlMetricNames.RuleExpressions(Yaml);

        Assert.Equal([("alert One", "up == 0"), ("alert Two", "sum(rate(a_total[5m])) / sum(rate(b_total[5m]))")], found);
    }

    [Fact(Timeout = 120_000)]
    public async Task Every_metric_in_the_dashboard_and_the_alert_rules_is_exported()
    {
        var root = RepositoryRoot();
        var dashboard = PromQlMetricNames.DashboardExpressions(await File.ReadAllTextAsync(Path.Combine(root, "deploy", "grafana", "imagingproxy.json")));
        var rules = PromQlMetricNames.RuleExpressions(await File.ReadAllTextAsync(Path.Combine(root, "deploy", "prometheus", "alerts.yml")));
        Assert.True(dashboard.Count >= 40, $"only {dashboard.Count} dashboard expressions found");
        Assert.True(rules.Count >= 6, $"only {rules.Count} alert expressions found");

        using var exported = new ExportedMetrics();
        var families = await ScrapeAfterTrafficAsync();

        // The naming rules reproduce the exporter for every ImagingProxy family that has data, in both directions.
        var byInstrument = exported.InstrumentFamilies();
        var derived = byInstrument.Values.ToHashSet(StringComparer.Ordinal);
        var scrapedOwn = families.Keys.Where(f => f.StartsWith("imagingproxy_", StringComparison.Ordinal)).ToList();
        Assert.All(scrapedOwn, family => Assert.True(derived.Contains(family), $"{family} is scraped but no instrument maps to it: [{string.Join(", ", derived.Order())}]"));
        var validated = exported.Instruments().Values.Where(i => families.ContainsKey(byInstrument[i.Name])).ToList();
        foreach (var kind in (Type[])[typeof(Counter<>), typeof(Histogram<>), typeof(UpDownCounter<>), typeof(ObservableGauge<>)])
        {
            Assert.Contains(validated, i => i.GetType().GetGenericTypeDefinition() == kind);
        }

        Assert.Contains(validated, i => i.Unit == "By");
        Assert.Contains(validated, i => i.Unit == "s");
        Assert.Contains(validated, i => i.Unit?.StartsWith('{') == true);

        var known = new HashSet<string>(families.Keys, StringComparer.Ordinal);
        known.UnionWith(derived);
        known.UnionWith(s_prometheusSeries);
        Assert.DoesNotContain("imagingproxy_nonexistent_total", known);

        var problems = new List<string>();
        var used = new HashSet<string>(StringComparer.Ordinal);
        foreach (var (where, expr) in dashboard.Select(d => ("dashboard " + d.Where, d.Expr)).Concat(rules.Select(r => ("alerts.yml " + r.Where, r.Expr))))
        {
            var names = PromQlMetricNames.Extract(expr);
            if (names.Count == 0)
            {
                problems.Add($"{where}: no metric name in '{expr}'");
            }

            foreach (var name in names)
            {
                used.Add(name);
                if (!known.Contains(name))
                {
                    problems.Add($"{where}: '{name}' is not exported");
                }
            }
        }

        Assert.True(problems.Count == 0, string.Join('\n', problems));
        Assert.True(used.Count >= 20, $"only {used.Count} distinct metrics used: {string.Join(", ", used)}");
    }

    private static async Task<Dictionary<string, string>> ScrapeAfterTrafficAsync()
    {
        using var certificate = new TestCertificate();
        await using var backend = await TestBackend.StartAsync("web1");
        await using var scp = LoopbackServer.DicomEchoScp();
        await using var node = LoopbackServer.Hl7Node();
        var health = """ "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:01", "Timeout": "00:00:05", "Path": "/health" } } """;
        var clusters = $$"""
            {
              "web": {{TestConfig.Cluster(health, backend)}},
              "xreg": {{TestConfig.Cluster("", backend)}},
              "pacs": { "Metadata": { "Protocol": "Dicom" }, "Destinations": { "pacs1": { "Address": "tcp://127.0.0.1:{{scp.Port}}" } } },
              "ris": { "Metadata": { "Protocol": "Mllp" }, "Destinations": { "ris1": { "Address": "tcp://127.0.0.1:{{node.Port}}" } } }
            }
            """;
        const string Routes = """{ "web": { "ClusterId": "web", "Match": { "Path": "/web/{**rest}" } } }""";
        const string ImagingProxySection = """
            {
              "Dicom": { "Listeners": { "dicom": { "Address": "127.0.0.1", "Port": 0 } }, "Routes": { "any": { "CalledAeTitle": "*", "Cluster": "pacs" } } },
              "Mllp": { "Listeners": { "hl7": { "Address": "127.0.0.1", "Port": 0 } }, "Routes": { "orders": { "MessageType": "ORM^O01", "Cluster": "ris" } } },
              "Xds": { "RegistryCluster": "xreg", "RepositoryCluster": "xreg" }
            }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(certificate, clusters, Routes, ImagingProxySection));

        using (var https = new HttpClient(certificate.TrustingHandler()))
        {
            (await https.GetAsync(new Uri(proxy.Url("Viewers", "https"), "/web/studies"))).EnsureSuccessStatusCode();
        }

        using var http = new HttpClient();
        using (var soap = new StringContent("<Envelope/>", Encoding.UTF8))
        {
            soap.Headers.ContentType = System.Net.Http.Headers.MediaTypeHeaderValue.Parse("application/soap+xml; charset=utf-8; action=\"urn:ihe:iti:2007:RegistryStoredQuery\"");
            (await http.PostAsync(proxy.Url("Xds"), soap)).EnsureSuccessStatusCode();
        }

        await DicomEchoAsync(proxy.Url("dicom").Port);
        await Hl7Async(proxy.Url("hl7").Port);

        // Poll the scrape (bounded) until every family the traffic should produce is there.
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var metrics = new Uri(proxy.Url("Admin"), "/metrics");
        while (true)
        {
            var families = ExportedMetrics.ParseFamilies(await http.GetStringAsync(metrics, deadline.Token));
            var missing = s_expectedFromTraffic.Where(f => !families.ContainsKey(f)).ToList();
            if (missing.Count == 0)
            {
                return families;
            }

            if (deadline.IsCancellationRequested)
            {
                Assert.Fail($"/metrics lacks {string.Join(", ", missing)} after the traffic; has {string.Join(", ", families.Keys)}");
            }

            await Task.Delay(100, CancellationToken.None);
        }
    }

    private static async Task DicomEchoAsync(int port)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync("127.0.0.1", port, timeout.Token);
        var stream = client.GetStream();
        await stream.WriteAsync(DicomCaptures.AssociateRequest, timeout.Token);
        Assert.Equal((byte)0x02, await LoopbackServer.ReadPduAsync(stream, timeout.Token));
        await stream.WriteAsync(DicomCaptures.EchoRequestPData, timeout.Token);
        Assert.Equal((byte)0x04, await LoopbackServer.ReadPduAsync(stream, timeout.Token));
        await stream.WriteAsync(DicomCaptures.ReleaseRequest, timeout.Token);
        Assert.Equal((byte)0x06, await LoopbackServer.ReadPduAsync(stream, timeout.Token));
    }

    private static async Task Hl7Async(int port)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        using var client = new TcpClient { NoDelay = true };
        await client.ConnectAsync("127.0.0.1", port, timeout.Token);
        var stream = client.GetStream();
        await stream.WriteAsync(LoopbackServer.Frame("MSH|^~\\&|RIS|HOSP|PACS|HOSP|20260101000000||ORM^O01|MSG1|P|2.5\rPID|1\r"), timeout.Token);
        Assert.Contains("MSA|AA|MSG1", await LoopbackServer.ReadFrameAsync(stream, timeout.Token), StringComparison.Ordinal);

        // No route for ADT: ImagingProxy answers with its own NAK. Bytes before the frame are rejected and dropped.
        byte[] junkThenFrame = [.. "junk"u8, .. LoopbackServer.Frame("MSH|^~\\&|RIS|HOSP|PACS|HOSP|20260101000000||ADT^A01|MSG2|P|2.5\rPID|1\r")];
        await stream.WriteAsync(junkThenFrame, timeout.Token);
        Assert.Contains("|MSG2", await LoopbackServer.ReadFrameAsync(stream, timeout.Token), StringComparison.Ordinal);
    }

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "ImagingProxy.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new DirectoryNotFoundException($"No ImagingProxy.sln above {AppContext.BaseDirectory}");
    }
}
