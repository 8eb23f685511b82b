using System.Globalization;
using System.Net;
using System.Text.Json;
using ImagingProxy.Mllp;
using ImagingProxy.PeerTests.Mllp;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;

namespace ImagingProxy.PeerTests.Telemetry;

/// <summary>
/// Debian's real <c>prometheus</c>, configured from deploy/prometheus (scrape config and alert rules; target and
/// intervals rewritten for the test), scrapes an in-process proxy every second after HTTP, DICOM (echoscu →
/// storescp) and HL7 (python3-hl7 node) traffic; the test reads the results back through Prometheus's HTTP API.
/// </summary>
public sealed class PrometheusScrapeTests
{
    private const int HttpRequests = 7;
    private const int Echoes = 2;
    private const int Hl7Messages = 3;
    private static readonly TimeSpan s_deadline = TimeSpan.FromSeconds(60);

    [Fact(Timeout = 180_000)]
    public async Task Prometheus_scrapes_the_proxy_and_sees_http_dicom_hl7_and_health_series()
    {
        using var temp = TempDirectory.Create("prometheus-");
        await using var backend = await TestBackend.StartAsync("web1");
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var node = await Hl7Node.StartAsync(temp.Path, "ris1");
        // Out of process: metrics of the meter "ImagingProxy" are process-wide, and other tests run proxies in this one.
        var configPath = Path.Combine(temp.Path, "proxy.json");
        await File.WriteAllTextAsync(configPath, ProxyConfig(backend.Url, scp.Port, node.Address));
        using var proxy = HostProcess.Start(["--config", configPath]);
        var viewers = new Uri($"http://127.0.0.1:{await proxy.PortAsync("Viewers")}/");

        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        for (var i = 0; i < HttpRequests; i++)
        {
            using var response = await http.GetAsync(new Uri(viewers, "/dicom-web/studies"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        using (var unrouted = await http.GetAsync(new Uri(viewers, "/dicomweb/studies")))
        {
            Assert.Equal(HttpStatusCode.NotFound, unrouted.StatusCode);
        }

        for (var i = 0; i < Echoes; i++)
        {
            var echo = await Dcmtk.EchoAsync(await proxy.PortAsync("dicom"), "PACS");
            Assert.True(echo.Succeeded, $"{echo}\n--- storescp ---\n{scp.Process.Output}");
        }

        using (var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            await using var client = await MllpClient.ConnectAsync(await proxy.PortAsync("hl7"), deadline.Token);
            for (var i = 0; i < Hl7Messages; i++)
            {
                var reply = await client.SendAsync(MllpClient.Message("C" + i.ToString(CultureInfo.InvariantCulture)), deadline.Token);
                Assert.Equal(AcknowledgmentCode.ApplicationAccept, reply?.Code);
            }
        }

        await using var prometheus = await StartPrometheusAsync(temp, await proxy.PortAsync("Admin"));
        var api = new PrometheusApi(http, prometheus.Url, prometheus.Process);

        await api.EventuallyAsync("the proxy target is up", async () =>
        {
            var targets = (await api.GetAsync("/api/v1/targets")).GetProperty("activeTargets").EnumerateArray().ToList();
            var target = Assert.Single(targets);
            Assert.Equal("imagingproxy", target.GetProperty("labels").GetProperty("job").GetString());
            Assert.Equal("up", target.GetProperty("health").GetString());
        });
        await api.EventuallyAsync("up == 1", async () => Assert.Equal(1, await api.ScalarAsync("up{job=\"imagingproxy\"}")));

        await api.EventuallyAsync("HTTP requests of the route", async () =>
            Assert.Equal(HttpRequests, await api.ScalarAsync("sum(imagingproxy_http_requests_total{route=\"dicomweb\",cluster=\"pacs-web\",destination=\"web1\",http_response_status_code=\"200\"})")));
        await api.EventuallyAsync("HTTP duration histogram", async () =>
            Assert.Equal(HttpRequests, await api.ScalarAsync("sum(imagingproxy_http_request_duration_seconds_count{route=\"dicomweb\"})")));
        await api.EventuallyAsync("the request no route matched", async () =>
            Assert.Equal(1, await api.ScalarAsync("sum(imagingproxy_http_unrouted_total{listener=\"Viewers\",http_response_status_code=\"404\"})")));

        await api.EventuallyAsync("released DICOM associations", async () =>
            Assert.Equal(Echoes, await api.ScalarAsync("sum(imagingproxy_dicom_associations_total{cluster=\"pacs\",destination=\"pacs1\",end_reason=\"released\"})")));
        await api.EventuallyAsync("C-ECHO-RQ in the DIMSE mix", async () =>
            Assert.Equal(Echoes, await api.ScalarAsync("sum(imagingproxy_dicom_dimse_operations_total{cluster=\"pacs\",dicom_command_field=\"C-ECHO-RQ\"})")));
        await api.EventuallyAsync("DICOM bytes both ways", async () =>
        {
            Assert.True(await api.ScalarAsync("sum(imagingproxy_dicom_bytes_total{cluster=\"pacs\",direction=\"client_to_node\"})") > 0);
            Assert.True(await api.ScalarAsync("sum(imagingproxy_dicom_bytes_total{cluster=\"pacs\",direction=\"node_to_client\"})") > 0);
        });
        await api.EventuallyAsync("no DICOM association left open", async () =>
            Assert.Equal(0, await api.ScalarAsync("sum(imagingproxy_dicom_associations_active{cluster=\"pacs\"})")));

        await api.EventuallyAsync("HL7 messages acknowledged AA", async () =>
            Assert.Equal(Hl7Messages, await api.ScalarAsync("sum(imagingproxy_hl7_messages_total{cluster=\"ris\",destination=\"ris1\",ack_code=\"AA\",message_type=\"ORM^O01\"})")));

        await api.EventuallyAsync("every cluster has its destination available", async () =>
        {
            Assert.Equal(1, await api.ScalarAsync("imagingproxy_cluster_destinations_available{cluster=\"pacs\",protocol=\"dicom\"}"));
            Assert.Equal(1, await api.ScalarAsync("imagingproxy_cluster_destinations_available{cluster=\"ris\",protocol=\"mllp\"}"));
            Assert.Equal(1, await api.ScalarAsync("imagingproxy_cluster_destinations_available{cluster=\"pacs-web\",protocol=\"http\"}"));
        });
        await api.EventuallyAsync("active probes mark the nodes healthy", async () =>
        {
            Assert.Equal(1, await api.ScalarAsync("imagingproxy_destination_health{cluster=\"pacs-web\",destination=\"web1\",kind=\"active\",health_state=\"Healthy\"}"));
            Assert.Equal(1, await api.ScalarAsync("imagingproxy_destination_health{cluster=\"pacs\",destination=\"pacs1\",kind=\"active\",health_state=\"Healthy\"}"));
            Assert.True(await api.ScalarAsync("sum(imagingproxy_health_probes_total{cluster=\"pacs\",result=\"healthy\"})") >= 1);
        });

        // Every rule of the file, loaded: as many as it has "- alert:" entries.
        var shipped = File.ReadLines(Path.Combine(RepoPaths.Root, "deploy", "prometheus", "alerts.yml")).Count(l => l.TrimStart().StartsWith("- alert:", StringComparison.Ordinal));
        Assert.True(shipped >= 7, $"only {shipped} alert rules in alerts.yml");
        await api.EventuallyAsync("the shipped alert rules load and evaluate", async () =>
        {
            var rules = (await api.GetAsync("/api/v1/rules")).GetProperty("groups").EnumerateArray().SelectMany(g => g.GetProperty("rules").EnumerateArray()).ToList();
            Assert.Equal(shipped, rules.Count);
            Assert.All(rules, r => Assert.Equal("ok", r.GetProperty("health").GetString()));
            Assert.All(rules, r => Assert.Equal("inactive", r.GetProperty("state").GetString()));
        });
    }

    [Fact(Timeout = 120_000)]
    public async Task A_configuration_edit_the_proxy_rejects_sets_off_the_shipped_alert_rule()
    {
        using var temp = TempDirectory.Create("prometheus-");
        const string Valid = """
            {
              "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
              "ImagingProxy": { "Mllp": { "MaxAttempts": 3 } }
            }
            """;
        var configPath = Path.Combine(temp.Path, "proxy.json");
        await File.WriteAllTextAsync(configPath, Valid);
        using var proxy = HostProcess.Start(["--config", configPath]);
        var admin = await proxy.PortAsync("Admin");
        await using var prometheus = await StartPrometheusAsync(temp, admin);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        var api = new PrometheusApi(http, prometheus.Url, prometheus.Process);
        await api.EventuallyAsync("the configuration in force is not rejected", async () =>
            Assert.Equal(0, await api.ScalarAsync("imagingproxy_config_rejected{job=\"imagingproxy\"}")));

        // A misspelt key: the edit is rejected and the last good configuration keeps serving, which a proxy (pod)
        // started now would not have: the rule must say so, as long as the edit stands.
        await File.WriteAllTextAsync(configPath, Valid.Replace("MaxAttempts", "MaxAttemps", StringComparison.Ordinal));
        await api.EventuallyAsync("the rejection is scraped", async () =>
            Assert.Equal(1, await api.ScalarAsync("imagingproxy_config_rejected{job=\"imagingproxy\"}")));
        await api.EventuallyAsync("ImagingProxyConfigRejected is pending for the instance", async () =>
        {
            var alerts = (await api.GetAsync("/api/v1/alerts")).GetProperty("alerts").EnumerateArray().ToList();
            var alert = Assert.Single(alerts, a => a.GetProperty("labels").GetProperty("alertname").GetString() == "ImagingProxyConfigRejected");
            Assert.Equal("pending", alert.GetProperty("state").GetString());
            Assert.Equal($"127.0.0.1:{admin.ToString(CultureInfo.InvariantCulture)}", alert.GetProperty("labels").GetProperty("instance").GetString());
        });
    }

    private static string ProxyConfig(Uri backend, int scpPort, string hl7Address) => $$"""
        {
          "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
          "ReverseProxy": {
            "Routes": { "dicomweb": { "ClusterId": "pacs-web", "Match": { "Path": "/dicom-web/{**rest}" } } },
            "Clusters": {
              "pacs-web": {
                "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:01", "Timeout": "00:00:05", "Path": "/health" } },
                "Destinations": { "web1": { "Address": "{{backend}}" } }
              },
              "pacs": {
                "HealthCheck": { "Active": { "Enabled": true, "Interval": "00:00:01", "Timeout": "00:00:05" } },
                "Metadata": { "Protocol": "Dicom" },
                "Destinations": { "pacs1": { "Address": "tcp://127.0.0.1:{{scpPort}}", "Metadata": { "AeTitle": "PACS" } } }
              },
              "ris": { "Metadata": { "Protocol": "Mllp" }, "Destinations": { "ris1": { "Address": "{{hl7Address}}" } } }
            }
          },
          "ImagingProxy": {
            "Dicom": { "Listeners": { "dicom": { "Address": "127.0.0.1", "Port": 0 } }, "Routes": { "pacs": { "CalledAeTitle": "PACS", "Cluster": "pacs" } } },
            "Mllp": { "Listeners": { "hl7": { "Address": "127.0.0.1", "Port": 0 } }, "Routes": { "all": { "MessageType": "*", "Cluster": "ris" } } }
          }
        }
        """;

    /// <summary>deploy/prometheus/prometheus.yml with the target and intervals rewritten, next to a copy of alerts.yml.</summary>
    private static async Task<(PeerProcess Process, Uri Url)> StartPrometheusCoreAsync(TempDirectory temp, int adminPort)
    {
        var deploy = Path.Combine(RepoPaths.Root, "deploy", "prometheus");
        var config = await File.ReadAllTextAsync(Path.Combine(deploy, "prometheus.yml"));
        Assert.Contains("proxy-1.hospital.example:9901", config, StringComparison.Ordinal);
        config = config
            .Replace("proxy-1.hospital.example:9901", $"127.0.0.1:{adminPort.ToString(CultureInfo.InvariantCulture)}", StringComparison.Ordinal)
            .Replace("interval: 15s", "interval: 1s", StringComparison.Ordinal)
            .Replace("scrape_timeout: 10s", "scrape_timeout: 1s", StringComparison.Ordinal);
        var directory = temp.Sub("config");
        var configPath = Path.Combine(directory, "prometheus.yml");
        await File.WriteAllTextAsync(configPath, config);
        File.Copy(Path.Combine(deploy, "alerts.yml"), Path.Combine(directory, "alerts.yml"));
        var data = temp.Sub("data");
        var (process, port) = await PortRetry.StartAsync(
            FreePort.Next,
            port => PeerProcess.Start(new PeerStartInfo("/usr/bin/prometheus")
            {
                Name = $"prometheus :{port}",
                Arguments =
                [
                    $"--config.file={configPath}",
                    $"--storage.tsdb.path={data}",
                    $"--web.listen-address=127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}",
                    "--log.level=warn",
                ],
            }),
            (process, port, token) => process.WaitForHttpAsync(new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/-/ready"), TimeSpan.FromSeconds(30), token));
        return (process, new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/"));
    }

    private static async Task<PrometheusProcess> StartPrometheusAsync(TempDirectory temp, int adminPort)
    {
        var (process, url) = await StartPrometheusCoreAsync(temp, adminPort);
        return new PrometheusProcess(process, url);
    }

    private sealed record PrometheusProcess(PeerProcess Process, Uri Url) : IAsyncDisposable
    {
        public ValueTask DisposeAsync() => Process.DisposeAsync();
    }

    /// <summary>Prometheus's HTTP API, polled with a deadline (no fixed sleeps).</summary>
    private sealed class PrometheusApi(HttpClient http, Uri baseUrl, PeerProcess process)
    {
        public async Task<JsonElement> GetAsync(string pathAndQuery)
        {
            using var response = await http.GetAsync(new Uri(baseUrl, pathAndQuery));
            var body = await response.Content.ReadAsStringAsync();
            Assert.True(response.IsSuccessStatusCode, $"GET {pathAndQuery}: {(int)response.StatusCode} {body}");
            using var document = JsonDocument.Parse(body);
            Assert.Equal("success", document.RootElement.GetProperty("status").GetString());
            return document.RootElement.GetProperty("data").Clone();
        }

        /// <summary>The value of an instant query with at most one series, or null when it has none.</summary>
        public async Task<double?> ScalarAsync(string query)
        {
            var data = await GetAsync("/api/v1/query?query=" + Uri.EscapeDataString(query));
            var result = data.GetProperty("result").EnumerateArray().ToList();
            Assert.True(result.Count <= 1, $"{query} returned {result.Count} series");
            return result.Count == 0 ? null : double.Parse(result[0].GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
        }

        public async Task EventuallyAsync(string what, Func<Task> check)
        {
            var deadline = DateTime.UtcNow + s_deadline;
            while (true)
            {
                try
                {
                    await check();
                    return;
                }
                catch (Exception ex) when (ex is Xunit.Sdk.XunitException or HttpRequestException)
                {
                    if (DateTime.UtcNow > deadline)
                    {
                        throw new TimeoutException($"Prometheus: no '{what}' within {s_deadline}: {ex.Message}\n--- prometheus ---\n{process.Output}", ex);
                    }
                }

                // A poll interval, not a synchronisation sleep: each scrape (every second) may bring the awaited sample.
                await Task.Delay(TimeSpan.FromMilliseconds(250));
            }
        }
    }
}
