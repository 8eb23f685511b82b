using System.Diagnostics.Metrics;
using System.Net;
using System.Text.Json;
using System.Threading.Channels;
using ImagingProxy.Health;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.PeerTests.Forwarding;

// Real peers: two nginx (Debian) servers behind an HTTP cluster with passive health. Server b breaks off every request
// (nginx's 444: the connection closes without an answer, a transport failure to the proxy) while one file exists, and
// answers 503 (a status the cluster's Retry.StatusCodes and FailureStatusCodes list) while another does.
public sealed class NginxPassiveHealthTests : IAsyncLifetime
{
    private readonly TempDirectory _flags = TempDirectory.Create("imagingproxy-passive-");
    private readonly Channel<string> _transitions = Channel.CreateUnbounded<string>();
    private NginxBehindProxy? _peers;
    private MetricCollector<long>? _requests;
    private int _sent;

    private string DownFlag => Path.Combine(_flags.Path, "down");

    private string ErrorFlag => Path.Combine(_flags.Path, "error");

    public async Task InitializeAsync()
    {
        _peers = await NginxBehindProxy.StartAsync(
            ["""location / { return 200 "a\n"; }""", $$"""location / { if (-f {{DownFlag}}) { return 444; } if (-f {{ErrorFlag}}) { return 503 "busy\n"; } return 200 "b\n"; }"""],
            nodes => (
                $$"""
                { "web": {
                    "LoadBalancingPolicy": "RoundRobin",
                    "HealthCheck": { "Passive": { "Enabled": true, "ReactivationPeriod": "00:00:02" } },
                    "Metadata": { "Retry.On": "BeforeResponse", "Retry.StatusCodes": "503", "TransportFailureRateHealthPolicy.FailureStatusCodes": "500, 503" },
                    "Destinations": { "a": { "Address": "{{nodes[0].BaseAddress}}" }, "b": { "Address": "{{nodes[1].BaseAddress}}" } } } }
                """,
                """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }"""));
        // Passive health judges a request after its answer went out; the request metric is recorded after that.
        _requests = new MetricCollector<long>(_peers.Proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.http.requests");
        _peers.Proxy.Services.GetRequiredService<DestinationHealthTracker>().Transition += (_, destination, kind, _, now) =>
        {
            if (destination == "b" && kind == "passive")
            {
                _transitions.Writer.TryWrite(now.ToString());
            }
        };
    }

    public async Task DisposeAsync()
    {
        _requests?.Dispose();
        if (_peers is not null)
        {
            await _peers.DisposeAsync();
        }

        _flags.Dispose();
    }

    [Fact(Timeout = 120_000)]
    public async Task A_failing_server_comes_back_after_the_clusters_ReactivationPeriod_and_goes_out_again_at_its_first_failure()
    {
        using var client = _peers!.ViewersClient();

        // b's failures are counted and the GETs sent on to a (Retry.On BeforeResponse): the viewer sees none of them.
        await OutBackOnProbationOutAgainAndRepairedAsync(client, DownFlag);

        Assert.Contains(_peers.Nodes[1].AccessLog, line => line.StartsWith("GET /studies HTTP/1.1 444", StringComparison.Ordinal));
    }

    [Fact(Timeout = 120_000)]
    public async Task A_server_that_answers_a_listed_status_goes_out_and_again_at_its_first_such_answer_on_probation()
    {
        using var client = _peers!.ViewersClient();

        // b's 503s count for passive health and each GET that meets one is sent on to a (Retry.StatusCodes): viewers see none.
        await OutBackOnProbationOutAgainAndRepairedAsync(client, ErrorFlag);

        Assert.Contains(_peers.Nodes[1].AccessLog, line => line.StartsWith("GET /studies HTTP/1.1 503", StringComparison.Ordinal));
        Assert.Contains(_peers.Nodes[1].AccessLog, line => line.StartsWith("GET /studies HTTP/1.1 200", StringComparison.Ordinal));

        // A POST is never sent twice: b's 503 reaches the client (round robin: within two POSTs).
        await File.WriteAllTextAsync(ErrorFlag, string.Empty);
        var posts = new List<HttpStatusCode>();
        for (var i = 0; i < 2; i++)
        {
            using var response = await client.PostAsync("/studies", new StringContent("{}"));
            posts.Add(response.StatusCode);
            await _requests!.WaitForMeasurementsAsync(++_sent, TimeSpan.FromSeconds(30));
        }

        Assert.Contains(HttpStatusCode.ServiceUnavailable, posts);
    }

    /// <summary>
    /// GETs one at a time until b's passive health becomes <paramref name="health"/>: how many it took, and the
    /// transitions seen before (the first request b gets makes an Unknown destination Healthy, failed or not, until
    /// there are enough requests to judge).
    /// </summary>
    /// Every answer is a's: b's failures are sent on (Retry.On, Retry.StatusCodes).
    private async Task<(int Sent, List<string> Before)> SendUntilAsync(HttpClient client, DestinationHealth health, int max)
    {
        var before = new List<string>();
        for (var sent = 1; sent <= max; sent++)
        {
            using var response = await client.GetAsync("/studies");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("a\n", await response.Content.ReadAsStringAsync());

            await _requests!.WaitForMeasurementsAsync(++_sent, TimeSpan.FromSeconds(30));
            while (_transitions.Reader.TryRead(out var seen))
            {
                if (seen == health.ToString())
                {
                    return (sent, before);
                }

                before.Add(seen);
            }
        }

        throw new Xunit.Sdk.XunitException($"b's passive health did not become {health} within {max} requests (seen: {string.Join(", ", before)})");
    }

    /// <summary>
    /// With <paramref name="flag"/> set, b fails until passive health takes it out; it comes back after the cluster's 2 s
    /// on probation (YARP's own policy waited for its 60 s detection window whatever the period said), goes out again at
    /// the first request it gets (round robin: within two or three GETs; a fresh start would have sent it ten more), and
    /// once repaired its first success makes it Healthy and it serves again.
    /// </summary>
    private async Task OutBackOnProbationOutAgainAndRepairedAsync(HttpClient client, string flag)
    {
        await File.WriteAllTextAsync(flag, string.Empty);
        var (sent, before) = await SendUntilAsync(client, DestinationHealth.Unhealthy, 40);
        Assert.InRange(sent, 10, 40);
        Assert.Equal(["Healthy"], before);

        Assert.Equal("Unknown", await NextTransitionAsync(TimeSpan.FromSeconds(30)));
        Assert.True(await OnProbationAsync());
        (sent, before) = await SendUntilAsync(client, DestinationHealth.Unhealthy, 10);
        Assert.True(sent <= 3, $"b went out again after {sent} requests");
        Assert.Empty(before);

        File.Delete(flag);
        Assert.Equal("Unknown", await NextTransitionAsync(TimeSpan.FromSeconds(30)));
        await ServeFromBothAsync(client);
        Assert.Equal("Healthy", await NextTransitionAsync(TimeSpan.FromSeconds(10)));
        Assert.False(await OnProbationAsync());
    }

    /// <summary>Six GETs, all answered, b's among them.</summary>
    private async Task ServeFromBothAsync(HttpClient client)
    {
        var served = new List<string>();
        for (var i = 0; i < 6; i++)
        {
            using var response = await client.GetAsync("/studies");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            served.Add(await response.Content.ReadAsStringAsync());
            await _requests!.WaitForMeasurementsAsync(++_sent, TimeSpan.FromSeconds(30));
        }

        Assert.Contains("b\n", served);
    }

    /// <summary>Whether <c>/status</c> shows b on probation.</summary>
    private async Task<bool> OnProbationAsync()
    {
        using var admin = new HttpClient { BaseAddress = _peers!.Proxy.Url("Admin") };
        using var status = JsonDocument.Parse(await admin.GetStringAsync("/status"));
        foreach (var destination in status.RootElement.GetProperty("clusters")[0].GetProperty("destinations").EnumerateArray())
        {
            if (destination.GetProperty("id").GetString() == "b")
            {
                return destination.GetProperty("health").TryGetProperty("probation", out var probation) && probation.GetBoolean();
            }
        }

        throw new Xunit.Sdk.XunitException("no destination b in /status");
    }

    private async Task<string> NextTransitionAsync(TimeSpan timeout)
    {
        using var deadline = new CancellationTokenSource(timeout);
        try
        {
            return await _transitions.Reader.ReadAsync(deadline.Token);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            throw new Xunit.Sdk.XunitException($"b's passive health did not change within {timeout.TotalSeconds} s");
        }
    }
}
