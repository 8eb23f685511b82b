using System.Diagnostics.Metrics;
using System.Net;
using System.Text.Json;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using ImagingProxy.Telemetry;
using ImagingProxy.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Configuration;

/// <summary>Hot reload of the --config file: good edits apply to new requests, bad edits are rejected whole.</summary>
public sealed class ConfigurationReloadTests : IAsyncLifetime
{
    private readonly TestCertificate _certificate = new();
    private TestBackend _a = null!;
    private TestBackend _b = null!;

    public async Task InitializeAsync()
    {
        _a = await TestBackend.StartAsync("a");
        _b = await TestBackend.StartAsync("b");
    }

    public async Task DisposeAsync()
    {
        await _a.DisposeAsync();
        await _b.DisposeAsync();
        _certificate.Dispose();
    }

    private string Config(TestBackend backend, string clusterId = "web")
        => TestConfig.Build(_certificate, $$"""{ "{{clusterId}}": {{TestConfig.Cluster("", backend)}} }""", $$"""{ "all": { "ClusterId": "{{clusterId}}", "Match": { "Path": "/{**rest}" } } }""");

    /// <summary>
    /// Requests go to <paramref name="backend"/> within 20 s: the routing YARP applies after a reload reaches requests
    /// already on their way a little later.
    /// </summary>
    private static async Task AssertServedByAsync(HttpClient client, string backend)
    {
        var deadline = DateTime.UtcNow.AddSeconds(20);
        string served;
        do
        {
            using var response = await client.GetAsync("/x");
            served = response.Headers.GetValues("X-Backend").Single();
        }
        while (served != backend && DateTime.UtcNow < deadline);
        Assert.Equal(backend, served);
    }

    [Fact]
    public async Task A_bad_reload_keeps_the_last_good_configuration_and_a_good_one_applies()
    {
        await using var proxy = await TestProxy.StartAsync(Config(_a));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        Assert.Equal("a", (await client.GetAsync("/x")).Headers.GetValues("X-Backend").Single());

        var bad = Config(_b).Replace("\"ClusterId\": \"web\"", "\"ClusterId\": \"ghost\"", StringComparison.Ordinal);
        var errors = await proxy.ReloadAsync(bad);
        Assert.Contains("ReverseProxy:Routes:all:ClusterId: unknown cluster 'ghost'.", errors);
        var gate = proxy.Services.GetRequiredService<ConfigurationGate>();
        Assert.Equal(1, gate.Generation);
        Assert.NotEmpty(gate.LastRejection);
        await AssertAStillServesThenBAppliesAsync(proxy, client, gate);
    }

    [Fact]
    public async Task A_reload_that_adds_a_listener_is_rejected_as_needing_a_restart_and_nothing_of_it_applies()
    {
        await using var proxy = await TestProxy.StartAsync(Config(_a));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var gate = proxy.Services.GetRequiredService<ConfigurationGate>();

        var withListener = TestConfig.Build(
            _certificate,
            $$"""{ "web": {{TestConfig.Cluster("", _b)}} }""",
            """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }""",
            """{ "Dicom": { "Listeners": { "dicom": { "Address": "127.0.0.1", "Port": 0 } } } }""");
        var errors = await proxy.ReloadAsync(withListener);

        var error = Assert.Single(errors);
        Assert.StartsWith("ImagingProxy:Dicom:Listeners:dicom: a new listener is read at start-up; the change applies after a restart", error, StringComparison.Ordinal);
        Assert.Equal(1, gate.Generation);
        Assert.Equal(errors, gate.LastRejection);
        using var response = await client.GetAsync("/x");
        Assert.Equal("a", response.Headers.GetValues("X-Backend").Single());
    }

    [Fact]
    public async Task A_reload_that_changes_a_connection_limit_fixed_at_bind_is_rejected_and_stating_its_default_is_not()
    {
        await using var proxy = await TestProxy.StartAsync(Config(_a));
        var gate = proxy.Services.GetRequiredService<ConfigurationGate>();
        static string WithLimit(string json, string value)
            => json.Replace("\"Kestrel\": {", $$"""
                "Kestrel": { "Limits": { "MaxConcurrentConnections": {{value}} },
                """, StringComparison.Ordinal);

        var errors = await proxy.ReloadAsync(WithLimit(Config(_a), "1"));

        var error = Assert.Single(errors);
        Assert.Equal("Kestrel:Limits:MaxConcurrentConnections: read at start-up; the change applies after a restart (running with '-1').", error);
        Assert.Equal(1, gate.Generation);
        Assert.Equal(errors, gate.LastRejection);
        Assert.Null(gate.Configuration["Kestrel:Limits:MaxConcurrentConnections"]);

        Assert.Empty(await proxy.ReloadAsync(WithLimit(Config(_a), "-1")));
        Assert.Equal(2, gate.Generation);
        Assert.Empty(gate.LastRejection);
    }

    [Fact]
    public async Task Putting_back_the_running_configuration_after_a_rejected_edit_clears_the_rejection()
    {
        var other = new ReloadableSource();
        await using var proxy = await TestProxy.StartAsync(Config(_a), builder =>
        {
            ((IConfigurationBuilder)builder.Configuration).Add(other);
            builder.Logging.AddFakeLogging();
        });
        var gate = proxy.Services.GetRequiredService<ConfigurationGate>();
        using var reloads = new MetricCollector<long>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.config.reloads");
        using var rejected = new MetricCollector<int>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.config.rejected");
        var bad = Config(_b).Replace("\"ClusterId\": \"web\"", "\"ClusterId\": \"ghost\"", StringComparison.Ordinal);
        var errors = await proxy.ReloadAsync(bad);
        Assert.NotEmpty(errors);
        Assert.NotEmpty(gate.LastRejection);
        Assert.Equal((0, 1, 1), Reloads());

        // The same edit judged again (one save can reach the watcher as two changes; here another source reloads):
        // still rejected, not counted again.
        var attempt = NextAttempt(gate);
        other.Provider.Raise();
        Assert.Equal(errors, await attempt);
        Assert.Equal((0, 1, 1), Reloads());

        Assert.Empty(await proxy.ReloadAsync(Config(_a)));

        Assert.Empty(gate.LastRejection);
        Assert.Null(gate.RejectedAt);
        Assert.Equal(1, gate.Generation);
        Assert.Equal((0, 1, 0), Reloads()); // the rejection is counted, no longer current
        var logs = proxy.Services.GetFakeLogCollector().GetSnapshot();
        Assert.Single(logs, r => r.Id.Id == 101); // the repeat was not logged again
        Assert.Equal("Configuration is back to what runs (generation 1); the rejected edit is no longer pending.", Assert.Single(logs, r => r.Id.Id == 103).Message);

        (long Applied, long Rejected, int Current) Reloads()
        {
            reloads.RecordObservableInstruments();
            rejected.RecordObservableInstruments();
            var snapshot = reloads.GetMeasurementSnapshot();
            return (snapshot.Last(m => (string?)m.Tags["result"] == "applied").Value, snapshot.Last(m => (string?)m.Tags["result"] == "rejected").Value, rejected.LastMeasurement!.Value);
        }
    }

    [Fact]
    public async Task An_edit_that_is_not_valid_JSON_is_rejected_and_the_file_last_parsed_stays_in_force_until_it_is_fixed()
    {
        var other = new ReloadableSource();
        await using var proxy = await TestProxy.StartAsync(Config(_a), builder => ((IConfigurationBuilder)builder.Configuration).Add(other));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var gate = proxy.Services.GetRequiredService<ConfigurationGate>();
        var good = Config(_b);
        var cut = good[..(good.Length / 2)];

        var errors = await proxy.WriteInvalidJsonAsync(cut);

        Assert.Equal([$"{proxy.ConfigPath}: not valid JSON: {TestProxy.JsonParseError(cut)}"], errors);
        Assert.Contains("LineNumber", errors[0], StringComparison.Ordinal);
        Assert.Equal(1, gate.Generation);
        Assert.Equal(errors, gate.LastRejection);
        Assert.NotNull(gate.RejectedAt);
        using (var response = await client.GetAsync("/x"))
        {
            Assert.Equal("a", response.Headers.GetValues("X-Backend").Single());
        }

        // Another source reloads while the file is broken: still rejected, never judged (nor applied) without the file.
        var attempt = NextAttempt(gate);
        other.Provider.Raise();
        Assert.Equal(errors, await attempt);
        Assert.Equal(1, gate.Generation);
        Assert.Equal(errors, gate.LastRejection);
        Assert.Equal(["web"], gate.Configuration.GetSection("ReverseProxy:Clusters").GetChildren().Select(c => c.Key));
        using (var response = await client.GetAsync("/x"))
        {
            Assert.Equal("a", response.Headers.GetValues("X-Backend").Single());
        }

        var emptied = await proxy.WriteInvalidJsonAsync("");
        Assert.Equal([$"{proxy.ConfigPath}: not valid JSON: {TestProxy.JsonParseError("")}"], emptied);
        Assert.Equal(1, gate.Generation);

        Assert.Empty(await proxy.ReloadAsync(good));
        Assert.Equal(2, gate.Generation);
        Assert.Empty(gate.LastRejection);
        Assert.Null(gate.RejectedAt);
        await AssertServedByAsync(client, "b");
    }

    [Fact]
    public async Task A_config_file_that_goes_missing_is_a_rejected_reload_and_the_configuration_in_force_stays_until_it_is_back()
    {
        await using var proxy = await TestProxy.StartAsync(Config(_a));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var gate = proxy.Services.GetRequiredService<ConfigurationGate>();

        // An editor or a tool that replaces the file by delete-and-create: the reload in between sees no file.
        var attempt = NextAttempt(gate);
        File.Delete(proxy.ConfigPath);
        var errors = await attempt;

        Assert.Equal([$"{proxy.ConfigPath}: file not found (deleted, or being replaced); the configuration in force stays until the file is back."], errors);
        Assert.Equal(1, gate.Generation);
        Assert.Equal(errors, gate.LastRejection);
        await AssertAStillServesThenBAppliesAsync(proxy, client, gate);
    }

    [Fact]
    public async Task A_reload_that_moves_an_endpoint_to_a_port_in_use_is_rejected_and_the_endpoint_keeps_serving()
    {
        await using var proxy = await TestProxy.StartAsync(Config(_a));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var gate = proxy.Services.GetRequiredService<ConfigurationGate>();
        using var other = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        other.Start();
        var port = ((IPEndPoint)other.LocalEndpoint).Port;

        var moved = Config(_b).Replace("\"https://127.0.0.1:0\"", $"\"https://127.0.0.1:{port}\"", StringComparison.Ordinal);
        Assert.Contains($":{port}", moved, StringComparison.Ordinal);
        var errors = await proxy.ReloadAsync(moved);

        Assert.Equal([$"Kestrel:Endpoints:Viewers:Url: 'https://127.0.0.1:{port}' cannot be bound (address already in use); the endpoint stays on its current address."], errors);
        Assert.Equal(1, gate.Generation);
        using (var response = await client.GetAsync("/x"))
        {
            Assert.Equal("a", response.Headers.GetValues("X-Backend").Single());
        }

        // Once the port is free the same edit applies.
        other.Stop();
        Assert.Empty(await proxy.ReloadAsync(moved));
        Assert.Equal(2, gate.Generation);
    }

    [Fact]
    public async Task A_reload_that_turns_active_checks_off_puts_an_unhealthy_destination_back_to_Unknown_in_status_and_metrics()
    {
        static string Config(TestCertificate certificate, TestBackend backend, bool active)
            => TestConfig.Build(certificate, $$"""
                { "checks-off": {{TestConfig.Cluster($$"""
                    "HealthCheck": { "Active": { "Enabled": {{(active ? "true" : "false")}}, "Interval": "00:00:00.200", "Timeout": "00:00:01", "Path": "/health" } }
                    """, backend)}} }
                """, """{ "all": { "ClusterId": "checks-off", "Match": { "Path": "/{**rest}" } } }""");
        await using var proxy = await TestProxy.StartAsync(Config(_certificate, _a, active: true));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        using var admin = new HttpClient { BaseAddress = proxy.Url("Admin") };
        var down = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var unknown = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        proxy.Services.GetRequiredService<DestinationHealthTracker>().Transition += (_, destination, kind, from, to) =>
        {
            if (destination == "a" && kind == "active" && to == DestinationHealth.Unhealthy)
            {
                down.TrySetResult();
            }
            else if (destination == "a" && kind == "active" && from == DestinationHealth.Unhealthy && to == DestinationHealth.Unknown)
            {
                unknown.TrySetResult();
            }
        };
        _a.Unhealthy = true;
        await down.Task.WaitAsync(TimeSpan.FromSeconds(60));
        using (var refused = await client.GetAsync("/x"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        }

        Assert.Empty(await proxy.ReloadAsync(Config(_certificate, _a, active: false)));

        await unknown.Task.WaitAsync(TimeSpan.FromSeconds(20));
        using (var status = JsonDocument.Parse(await admin.GetStringAsync("/status")))
        {
            var destination = status.RootElement.GetProperty("clusters")[0].GetProperty("destinations")[0];
            Assert.Equal("Unknown", destination.GetProperty("health").GetProperty("active").GetString());
            Assert.True(destination.GetProperty("available").GetBoolean());
        }

        // The gauge reports the current state only: the Unhealthy series is gone, so ImagingProxyDestinationDown resolves.
        // (A cluster name of this test's own: other in-process proxies' series can reach this one's /metrics, as the
        // runtime's meter listeners are process-wide, and many tests have a destination "a" in a cluster "web".)
        var active = (await admin.GetStringAsync("/metrics")).Split('\n')
            .Where(l => l.StartsWith("imagingproxy_destination_health{", StringComparison.Ordinal) && l.Contains("cluster=\"checks-off\"", StringComparison.Ordinal)
                && l.Contains("destination=\"a\"", StringComparison.Ordinal) && l.Contains("kind=\"active\"", StringComparison.Ordinal))
            .ToList();
        Assert.True(active.Count == 1, string.Join('\n', active));
        var line = active[0];
        Assert.Contains("health_state=\"Unknown\"", line, StringComparison.Ordinal);
        Assert.EndsWith(" 1", line, StringComparison.Ordinal);
        using var served = await client.GetAsync("/x");
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
        Assert.Equal("a", served.Headers.GetValues("X-Backend").Single());
    }

    /// <summary>After a rejected reload: backend a still serves, and a good reload to b then applies (generation 2).</summary>
    private async Task AssertAStillServesThenBAppliesAsync(TestProxy proxy, HttpClient client, ConfigurationGate gate)
    {
        using (var response = await client.GetAsync("/x"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("a", response.Headers.GetValues("X-Backend").Single());
        }

        Assert.Empty(await proxy.ReloadAsync(Config(_b)));
        Assert.Equal(2, gate.Generation);
        Assert.Empty(gate.LastRejection);
        await AssertServedByAsync(client, "b");
    }

    /// <summary>The problems of the gate's next reload attempt.</summary>
    private static Task<IReadOnlyList<string>> NextAttempt(ConfigurationGate gate)
    {
        var attempted = new TaskCompletionSource<IReadOnlyList<string>>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnAttempt(IReadOnlyList<string> errors)
        {
            gate.ReloadAttempted -= OnAttempt;
            attempted.TrySetResult(errors);
        }

        gate.ReloadAttempted += OnAttempt;
        return attempted.Task.WaitAsync(TimeSpan.FromSeconds(20));
    }

    [Fact]
    public async Task A_reload_yarp_refuses_is_rolled_back_whole()
    {
        await using var proxy = await TestProxy.StartAsync(Config(_a));
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = proxy.Url("Viewers", "https") };
        var gate = proxy.Services.GetRequiredService<ConfigurationGate>();

        // Valid for ImagingProxy's own validator (the route follows the renamed cluster), refused by YARP (the transform).
        var refused = Config(_b, clusterId: "renamed").Replace("\"Match\":", "\"Transforms\": [ { \"PathRemovePrefx\": \"/x\" } ], \"Match\":", StringComparison.Ordinal);
        var errors = await proxy.ReloadAsync(refused);

        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:", StringComparison.Ordinal) && e.Contains("PathRemovePrefx", StringComparison.Ordinal));
        Assert.Equal(1, gate.Generation);
        Assert.Equal(errors, gate.LastRejection);
        Assert.Equal(["web"], gate.Configuration.GetSection("ReverseProxy:Clusters").GetChildren().Select(c => c.Key));
        using (var response = await client.GetAsync("/x"))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("a", response.Headers.GetValues("X-Backend").Single());
        }

        Assert.Empty(await proxy.ReloadAsync(Config(_b, clusterId: "renamed")));
        Assert.Equal(2, gate.Generation);
        Assert.Equal(["renamed"], gate.Configuration.GetSection("ReverseProxy:Clusters").GetChildren().Select(c => c.Key));
    }

    [Fact]
    public async Task A_reload_yarp_refuses_never_moves_a_kestrel_endpoint()
    {
        // "The last good configuration keeps serving": Kestrel followed the change while YARP judged it, stopped the
        // endpoint, bound it as the refused change said and then back, cutting its connections twice.
        await using var proxy = await TestProxy.StartAsync(Config(_a), builder => builder.Logging.AddFakeLogging().AddFilter("Microsoft.AspNetCore.Server.Kestrel", LogLevel.Information));
        const string xds = "\"Xds\": { \"Url\": \"http://127.0.0.1:0\" }";
        var refused = Config(_a).Replace(xds, "\"Xds\": { \"Url\": \"http://127.0.0.1:0\", \"Protocols\": \"Http1\" }", StringComparison.Ordinal)
            .Replace("\"Match\":", "\"Transforms\": [ { \"PathRemovePrefx\": \"/x\" } ], \"Match\":", StringComparison.Ordinal);
        Assert.Contains(await proxy.ReloadAsync(refused), e => e.Contains("PathRemovePrefx", StringComparison.Ordinal));

        // An accepted change that moves the endpoint: Kestrel rebinds in order, so once it has started this one, any
        // rebind of the refused change and of its rollback has been logged before it.
        using var probe = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        var port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        Assert.Empty(await proxy.ReloadAsync(Config(_a).Replace(xds, $"\"Xds\": {{ \"Url\": \"http://127.0.0.1:{port}\" }}", StringComparison.Ordinal)));
        var logs = proxy.Services.GetFakeLogCollector();
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (!logs.GetSnapshot().Any(r => r.Message.Contains($"Starting the following endpoints: 'http://127.0.0.1:{port}'", StringComparison.Ordinal)) && DateTime.UtcNow < deadline)
        {
            await Task.Delay(20);
        }

        Assert.Single(logs.GetSnapshot(), r => r.Message.Contains("Config changed. Stopping the following endpoints", StringComparison.Ordinal));
        Assert.Single(logs.GetSnapshot(), r => r.Message.Contains("Config changed. Starting the following endpoints", StringComparison.Ordinal));
    }

    [Fact]
    public async Task ReloadAsync_answers_with_the_attempt_at_the_content_it_wrote_not_a_later_attempt_at_earlier_content()
    {
        // A second change event of an earlier write makes the proxy try the content it already has once more; under load
        // that attempt came after the next ReloadAsync had subscribed, which then returned its verdict.
        var earlier = new ReloadableSource();
        await using var proxy = await TestProxy.StartAsync(Config(_a), builder => ((IConfigurationBuilder)builder.Configuration).Add(earlier));
        var refused = Config(_b, clusterId: "renamed").Replace("\"Match\":", "\"Transforms\": [ { \"PathRemovePrefx\": \"/x\" } ], \"Match\":", StringComparison.Ordinal);

        var reload = proxy.ReloadAsync(refused);
        earlier.Provider.Raise();

        Assert.Contains(await reload, e => e.Contains("PathRemovePrefx", StringComparison.Ordinal));
    }

    /// <summary>A configuration source without keys whose provider signals a reload when told to.</summary>
    private sealed class ReloadableSource : IConfigurationSource
    {
        public RaisingProvider Provider { get; } = new();

        public IConfigurationProvider Build(IConfigurationBuilder builder) => Provider;
    }

    private sealed class RaisingProvider : ConfigurationProvider
    {
        public void Raise() => OnReload();
    }

    [Fact]
    public async Task A_start_up_configuration_yarp_refuses_is_reported_like_any_other_problem()
    {
        var refused = Config(_a).Replace("\"Match\":", "\"Transforms\": [ { \"PathRemovePrefx\": \"/x\" } ], \"Match\":", StringComparison.Ordinal);

        var ex = await Assert.ThrowsAsync<InvalidConfigurationException>(() => TestProxy.StartAsync(refused));

        Assert.Contains(ex.Errors, e => e.StartsWith("ReverseProxy:", StringComparison.Ordinal) && e.Contains("PathRemovePrefx", StringComparison.Ordinal));
    }
}
