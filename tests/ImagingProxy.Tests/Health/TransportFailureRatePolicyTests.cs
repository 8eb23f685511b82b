using ImagingProxy.Configuration;
using ImagingProxy.Health;
using ImagingProxy.Testing;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Health;

public sealed class TransportFailureRatePolicyTests
{
    private readonly FakeTimeProvider _time = new(new DateTimeOffset(2026, 1, 2, 3, 4, 5, TimeSpan.Zero));
    private readonly PassiveRecorder _updater = new();
    private readonly DestinationState _destination = HealthFixtures.Destination("b");
    private readonly FakeLogger<TransportFailureRatePolicy> _logger = new();

    [Fact]
    public void Ten_requests_a_third_of_them_failed_take_the_destination_out_for_the_clusters_own_period()
    {
        var policy = Policy();
        var cluster = Cluster(reactivation: TimeSpan.FromSeconds(5));

        Send(policy, cluster, failed: false, count: 7);
        Send(policy, cluster, failed: true, count: 2);
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);

        Send(policy, cluster, failed: true);

        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
        var logged = Assert.Single(_logger.Collector.GetSnapshot());
        Assert.Equal(325, logged.Id.Id);
        Assert.Equal("Passive health takes destination 'b' of cluster 'web' out: 3 of its last 10 requests (within 60 s) failed, the limit is 0.3; back on probation in 00:00:05.", logged.Message);
        // YARP's policy passes max(period, its 60 s detection window): 60 s here.
        Assert.Equal([(DestinationHealth.Healthy, TimeSpan.FromSeconds(5)), (DestinationHealth.Unhealthy, TimeSpan.FromSeconds(5))], _updater.Calls);
    }

    [Fact]
    public void Without_a_period_the_destination_stays_out_for_60_seconds()
    {
        var policy = Policy();
        var cluster = Cluster(reactivation: null);

        Send(policy, cluster, failed: true, count: 10);

        Assert.Equal((DestinationHealth.Unhealthy, TimeSpan.FromSeconds(60)), _updater.Calls[^1]);
    }

    [Fact]
    public void A_reactivated_destination_goes_out_at_its_first_failure_until_it_succeeds_once()
    {
        var policy = Policy();
        var cluster = Cluster(reactivation: TimeSpan.FromSeconds(5));
        Send(policy, cluster, failed: true, count: 10);

        Reactivate();
        Send(policy, cluster, failed: true);
        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
        Assert.Equal(
            "Passive health takes destination 'b' of cluster 'web' out again: its first request since it came back failed (Request); back on probation in 00:00:05.",
            _logger.Collector.LatestRecord.Message);
        Assert.Equal(326, _logger.Collector.LatestRecord.Id.Id);

        Reactivate();
        Assert.True(policy.IsOnProbation(_destination));
        Send(policy, cluster, failed: false);
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);
        Assert.False(policy.IsOnProbation(_destination));
        Assert.False(policy.IsOnProbation(HealthFixtures.Destination("never-seen")));

        // Probation is over and the failures that took it out were forgotten: it takes a third of ten requests again.
        Send(policy, cluster, failed: true, count: 2);
        Send(policy, cluster, failed: false, count: 6);
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);
        Send(policy, cluster, failed: true);
        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
    }

    [Fact]
    public void Requests_that_end_while_the_destination_is_out_change_nothing()
    {
        var policy = Policy();
        var cluster = Cluster(reactivation: TimeSpan.FromSeconds(5));
        Send(policy, cluster, failed: true, count: 10);
        var calls = _updater.Calls.Count;

        Send(policy, cluster, failed: false, count: 20);

        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
        Assert.Equal(calls, _updater.Calls.Count);
    }

    [Fact]
    public void Failures_older_than_the_detection_window_no_longer_count()
    {
        var policy = Policy();
        var cluster = Cluster(reactivation: TimeSpan.FromSeconds(5));
        Send(policy, cluster, failed: true, count: 9);

        _time.Advance(TimeSpan.FromSeconds(61));
        Send(policy, cluster, failed: false, count: 9);
        Send(policy, cluster, failed: true);

        // 1 failure in 10 within the window; with the 9 old ones it would have been 10 in 19.
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);
    }

    [Fact]
    public void Failures_within_the_window_still_count_across_seconds()
    {
        var policy = Policy();
        var cluster = Cluster(reactivation: TimeSpan.FromSeconds(5));
        for (var i = 0; i < 10; i++)
        {
            Send(policy, cluster, failed: true);
            _time.Advance(TimeSpan.FromSeconds(5));
        }

        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
    }

    [Fact]
    public void The_clusters_RateLimit_metadata_sets_the_share_of_failures()
    {
        var policy = Policy();
        var cluster = Cluster(reactivation: TimeSpan.FromSeconds(5), rateLimit: "0.5");

        Send(policy, cluster, failed: false, count: 6);
        Send(policy, cluster, failed: true, count: 4);
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);

        Send(policy, cluster, failed: true);
        Send(policy, cluster, failed: true);
        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
    }

    [Fact]
    public void Server_errors_count_only_when_the_cluster_lists_them()
    {
        var policy = Policy();
        var plain = Cluster(reactivation: TimeSpan.FromSeconds(5));
        for (var i = 0; i < 10; i++)
        {
            policy.RequestProxied(Answered(503), plain, _destination);
        }

        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);

        var listed = Cluster(reactivation: TimeSpan.FromSeconds(5), failureStatusCodes: "502, 503");
        foreach (var status in (int[])[200, 404, 500, 501, 504, 429, 302, 200, 200])
        {
            policy.RequestProxied(Answered(status), listed, _destination);
        }

        // 0 of 19 requests failed so far; the 503s above were answered before the cluster listed them.
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);
        for (var i = 0; i < 8; i++)
        {
            policy.RequestProxied(Answered(i % 2 == 0 ? 503 : 502), listed, _destination);
        }

        // 8 of 27 is below the 0.3; the ninth makes 9 of 28.
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);
        policy.RequestProxied(Answered(503), listed, _destination);
        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
        Assert.Equal(
            "Passive health takes destination 'b' of cluster 'web' out: 9 of its last 28 requests (within 60 s) failed, the limit is 0.3; back on probation in 00:00:05.",
            _logger.Collector.LatestRecord.Message);
    }

    [Fact]
    public void A_reactivated_destination_that_answers_a_listed_status_goes_out_again()
    {
        var policy = Policy();
        var cluster = Cluster(reactivation: TimeSpan.FromSeconds(5), failureStatusCodes: "5xx");
        for (var i = 0; i < 10; i++)
        {
            policy.RequestProxied(Answered(500), cluster, _destination);
        }

        Reactivate();
        policy.RequestProxied(Answered(507), cluster, _destination);

        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
        Assert.Equal(327, _logger.Collector.LatestRecord.Id.Id);
        Assert.Equal(
            "Passive health takes destination 'b' of cluster 'web' out again: its first request since it came back was answered 507, a status in FailureStatusCodes; back on probation in 00:00:05.",
            _logger.Collector.LatestRecord.Message);

        Reactivate();
        policy.RequestProxied(Answered(200), cluster, _destination);
        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);
        Assert.False(policy.IsOnProbation(_destination));
    }

    [Fact]
    public void Client_errors_are_not_failures_of_the_server()
    {
        var policy = Policy();
        var cluster = Cluster(reactivation: TimeSpan.FromSeconds(5));

        foreach (var error in (ForwarderError[])[ForwarderError.RequestCanceled, ForwarderError.RequestBodyCanceled, ForwarderError.RequestBodyClient,
            ForwarderError.ResponseBodyCanceled, ForwarderError.ResponseBodyClient, ForwarderError.NoAvailableDestinations])
        {
            for (var i = 0; i < 5; i++)
            {
                policy.RequestProxied(Context(error), cluster, _destination);
            }
        }

        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);
        foreach (var error in (ForwarderError[])[ForwarderError.Request, ForwarderError.RequestTimedOut, ForwarderError.RequestBodyDestination,
            ForwarderError.ResponseBodyDestination, ForwarderError.UpgradeRequestDestination, ForwarderError.UpgradeResponseDestination])
        {
            Assert.True(TransportFailureRatePolicy.IsServerFailure(new ErrorFeature(error)), error.ToString());
        }
    }

    [Fact]
    public void The_status_YARP_gives_a_forwarder_error_is_not_judged_as_the_servers_answer()
    {
        // YARP answers its forwarder's errors itself (502 for a client that went away before the answer, 400 for a
        // broken upload, 503 for no destination): with 5xx listed, those must stay the client's, not the server's.
        var policy = Policy();
        var cluster = Cluster(reactivation: TimeSpan.FromSeconds(5), failureStatusCodes: "5xx");
        foreach (var (error, status) in ((ForwarderError, int)[])[(ForwarderError.RequestCanceled, 502), (ForwarderError.RequestBodyClient, 400),
            (ForwarderError.NoAvailableDestinations, 503), (ForwarderError.Request, 502)])
        {
            for (var i = 0; i < 5; i++)
            {
                var context = Context(error, aborted: error == ForwarderError.Request);
                context.Response.StatusCode = status;
                policy.RequestProxied(context, cluster, _destination);
            }
        }

        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);
    }

    [Fact]
    public void A_request_the_client_abandoned_is_not_a_failure_of_the_server()
    {
        var policy = Policy();
        var cluster = Cluster(reactivation: TimeSpan.FromSeconds(5));

        for (var i = 0; i < 10; i++)
        {
            policy.RequestProxied(Context(ForwarderError.Request, aborted: true), cluster, _destination);
        }

        Assert.Equal(DestinationHealth.Healthy, _destination.Health.Passive);
    }

    [Fact]
    public void Only_a_success_ends_probation()
    {
        var policy = Policy();
        var cluster = Cluster(reactivation: TimeSpan.FromSeconds(5));
        Send(policy, cluster, failed: true, count: 10);
        Reactivate();

        policy.RequestProxied(Context(ForwarderError.ResponseBodyClient), cluster, _destination);
        policy.RequestProxied(Context(ForwarderError.Request, aborted: true), cluster, _destination);
        Assert.Equal(DestinationHealth.Unknown, _destination.Health.Passive);

        Send(policy, cluster, failed: true);
        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
    }

    [Fact]
    public void A_result_judged_on_another_thread_while_the_destination_goes_out_does_not_end_its_probation()
    {
        // A request that ends while another takes the destination out, before the updater has set it Unhealthy. Its
        // thread is started from inside the updater's call, which then waits until that thread is blocked (on the
        // destination's lock) or done (without the lock it would judge the success there, and end the probation).
        var policy = Policy();
        var cluster = Cluster(reactivation: TimeSpan.FromSeconds(5));
        Thread? other = null;
        _updater.OnUnhealthy = () =>
        {
            other = new Thread(() => Send(policy, cluster, failed: false, count: 3));
            other.Start();
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while ((other.ThreadState & (ThreadState.WaitSleepJoin | ThreadState.Stopped)) == 0 && DateTime.UtcNow < deadline)
            {
                Thread.Yield();
            }
        };
        Send(policy, cluster, failed: true, count: 10);
        _updater.OnUnhealthy = null;
        Assert.True(other!.Join(TimeSpan.FromSeconds(30)));
        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);

        Reactivate();
        Send(policy, cluster, failed: true);

        Assert.Equal(DestinationHealth.Unhealthy, _destination.Health.Passive);
        Assert.Equal(326, _logger.Collector.LatestRecord.Id.Id);
    }

    [Fact]
    public async Task It_takes_the_place_of_YARPs_policy_in_the_host()
    {
        using var certificate = new TestCertificate();
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(
            certificate, """{ "web": { "Destinations": { "a": { "Address": "http://127.0.0.1:9/" } } } }"""));

        var policy = Assert.Single(proxy.Services.GetServices<IPassiveHealthCheckPolicy>());

        Assert.IsType<TransportFailureRatePolicy>(policy);
        Assert.Equal("TransportFailureRate", policy.Name);
    }

    /// <summary>What YARP does once the 5 s reactivation period is over.</summary>
    private void Reactivate()
    {
        _time.Advance(TimeSpan.FromSeconds(5));
        _destination.Health.Passive = DestinationHealth.Unknown;
    }

    private TransportFailureRatePolicy Policy() => new(Options.Create(new TransportFailureRateHealthPolicyOptions()), _updater, new ServiceCollection().BuildServiceProvider(), _time, _logger);

    private static ClusterState Cluster(TimeSpan? reactivation, string? rateLimit = null, string? failureStatusCodes = null)
    {
        var metadata = new Dictionary<string, string>();
        if (rateLimit is not null)
        {
            metadata[TransportFailureRateHealthPolicyOptions.FailureRateLimitMetadataName] = rateLimit;
        }

        if (failureStatusCodes is not null)
        {
            metadata[MetadataKeys.PassiveFailureStatusCodes] = failureStatusCodes;
        }

        var cluster = HealthFixtures.Cluster("web", activeFlag: false, passive: true, metadata, "b");
        return HealthFixtures.Reconfigured(cluster, config => config with
        {
            HealthCheck = config.HealthCheck! with { Passive = new PassiveHealthCheckConfig { Enabled = true, ReactivationPeriod = reactivation } },
        });
    }

    private void Send(TransportFailureRatePolicy policy, ClusterState cluster, bool failed, int count = 1)
    {
        for (var i = 0; i < count; i++)
        {
            policy.RequestProxied(Context(failed ? ForwarderError.Request : null), cluster, _destination);
        }
    }

    /// <summary>A request the server answered with <paramref name="statusCode"/> (no forwarder error).</summary>
    private static DefaultHttpContext Answered(int statusCode)
    {
        var context = new DefaultHttpContext();
        context.Response.StatusCode = statusCode;
        return context;
    }

    private static DefaultHttpContext Context(ForwarderError? error, bool aborted = false)
    {
        var context = new DefaultHttpContext { RequestAborted = new CancellationToken(aborted) };
        if (error is { } e)
        {
            context.Features.Set<IForwarderErrorFeature>(new ErrorFeature(e));
        }

        return context;
    }

    private sealed class ErrorFeature(ForwarderError error) : IForwarderErrorFeature
    {
        public ForwarderError Error => error;

        public Exception? Exception => null;
    }

    /// <summary>Applies passive health as YARP's updater does and records each call.</summary>
    private sealed class PassiveRecorder : IDestinationHealthUpdater
    {
        public List<(DestinationHealth Health, TimeSpan Period)> Calls { get; } = [];

        public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthStates) => throw new NotSupportedException();

        /// <summary>Runs at a call that takes the destination out, before its health changes.</summary>
        public Action? OnUnhealthy { get; set; }

        public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
        {
            if (newHealth == DestinationHealth.Unhealthy)
            {
                OnUnhealthy?.Invoke();
            }

            destination.Health.Passive = newHealth;
            Calls.Add((newHealth, reactivationPeriod));
        }
    }
}
