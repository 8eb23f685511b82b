using System.Diagnostics.Metrics;
using ImagingProxy.Balancing;
using ImagingProxy.Dicom;
using ImagingProxy.Forwarding;
using ImagingProxy.Telemetry;
using ImagingProxy.Tests.Support;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Balancing;

public sealed class DestinationLimitsTests : IDisposable
{
    private static readonly HttpMessageInvoker s_invoker = new(new HttpClientHandler());
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly DestinationLimits _limits;

    public DestinationLimitsTests() => _limits = new DestinationLimits(_services.GetRequiredService<IMeterFactory>());

    public void Dispose()
    {
        _limits.Dispose();
        _services.Dispose();
    }

    /// <summary>A cluster whose destinations "a", "b" ... have the given MaxConcurrent (null: none) and requests in flight.</summary>
    private static ClusterState Cluster(string protocol, params (string? Max, int Load)[] destinations) => Cluster(protocol, null, destinations);

    /// <summary>As above, with the cluster's <c>QueueTimeout</c> metadata.</summary>
    private static ClusterState Cluster(string protocol, string? queueTimeout, params (string? Max, int Load)[] destinations)
    {
        var configs = new Dictionary<string, DestinationConfig>();
        for (var i = 0; i < destinations.Length; i++)
        {
            configs[((char)('a' + i)).ToString()] = new DestinationConfig
            {
                Address = protocol == "Http" ? "http://127.0.0.1:9/" : "tcp://127.0.0.1:9",
                Metadata = destinations[i].Max is { } max ? new Dictionary<string, string> { ["MaxConcurrent"] = max } : null,
            };
        }

        var metadata = new Dictionary<string, string> { ["Protocol"] = protocol };
        if (queueTimeout is not null)
        {
            metadata["QueueTimeout"] = queueTimeout;
        }

        var config = new ClusterConfig { ClusterId = "c", Metadata = metadata, Destinations = configs };
        var cluster = new ClusterState("c", new ClusterModel(config, s_invoker));
        var ordered = new List<DestinationState>();
        for (var i = 0; i < destinations.Length; i++)
        {
            var id = ((char)('a' + i)).ToString();
            var state = new DestinationState(id, new DestinationModel(configs[id])) { ConcurrentRequestCount = destinations[i].Load };
            cluster.Destinations[id] = state;
            ordered.Add(state);
        }

        cluster.DestinationsState = new ClusterDestinationsState(ordered, ordered);
        return cluster;
    }

    private static (DefaultHttpContext Context, TestReverseProxyFeature Feature) Request(ClusterState cluster)
    {
        var context = new DefaultHttpContext();
        context.Request.Method = HttpMethods.Get;
        context.Request.Path = "/studies";
        context.Response.Body = new MemoryStream();
        var feature = new TestReverseProxyFeature
        {
            Route = new RouteModel(new RouteConfig { RouteId = "all", ClusterId = "c" }, cluster, HttpTransformer.Empty),
            Cluster = cluster.Model,
            AvailableDestinations = cluster.DestinationsState.AvailableDestinations,
        };
        context.Features.Set<IReverseProxyFeature>(feature);
        return (context, feature);
    }

    private async Task<(bool Forwarded, IReadOnlyList<DestinationState> Available, DefaultHttpContext Context)> RouteAsync(ClusterState cluster, Action<HttpContext>? prepare = null)
    {
        var (context, feature) = Request(cluster);
        prepare?.Invoke(context);
        var step = Step(TimeProvider.System);
        var rest = new Rest();
        await step.InvokeAsync(context, rest.InvokeAsync);
        return (rest.Forwarded, feature.AvailableDestinations, context);
    }

    /// <summary>The HTTP limit step; a queued request reads the available destinations of <paramref name="clusters"/> again.</summary>
    private DestinationLimitStep Step(TimeProvider time, params ClusterState[] clusters)
        => new(_limits, new HttpProxyMetrics(_services.GetRequiredService<IMeterFactory>()), time, new FixedProxyState(clusters), NullLogger<DestinationLimitStep>.Instance);

    [Fact]
    public async Task With_QueueTimeout_a_request_to_a_full_cluster_waits_and_goes_when_a_request_of_the_cluster_ends()
    {
        using var waits = new MetricCollector<double>(_services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.http.queue.wait.duration");
        var cluster = Cluster("Http", "00:00:30", ("1", 1), ("1", 1));
        var step = Step(new FakeTimeProvider(), cluster);
        var (queued, feature) = Request(cluster);
        var rest = new Rest();

        var waiting = step.InvokeAsync(queued, rest.InvokeAsync);
        Assert.False(waiting.IsCompleted);

        // b's request ends (YARP's count drops) and another one of the cluster goes through the step and ends: the
        // queued request is woken (the fake clock never moves), finds b's place and goes there.
        cluster.Destinations["b"].ConcurrentRequestCount = 0;
        var (other, _) = Request(cluster);
        await step.InvokeAsync(other, _ => Task.CompletedTask);

        await waiting.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.True(rest.Forwarded);
        Assert.Equal(["b"], feature.AvailableDestinations.Select(d => d.DestinationId));
        Assert.Equal(200, queued.Response.StatusCode);
        Assert.Equal(QueueResults.Placed, Assert.Single(waits.GetMeasurementSnapshot()).Tags["result"]);
    }

    [Fact]
    public async Task With_QueueTimeout_a_request_no_place_is_freed_for_gets_503_when_it_expires()
    {
        using var waits = new MetricCollector<double>(_services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.http.queue.wait.duration");
        var time = new FakeTimeProvider();
        var cluster = Cluster("Http", "00:00:01", ("1", 1));
        var step = Step(time, cluster);
        var (context, _) = Request(cluster);
        var rest = new Rest();

        var waiting = step.InvokeAsync(context, rest.InvokeAsync);
        Assert.False(waiting.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.False(rest.Forwarded);
        Assert.Equal(StatusCodes.Status503ServiceUnavailable, context.Response.StatusCode);
        Assert.Equal("5", context.Response.Headers.RetryAfter.ToString());
        var wait = Assert.Single(waits.GetMeasurementSnapshot());
        Assert.Equal((QueueResults.TimedOut, 1.0), (wait.Tags["result"], wait.Value));
    }

    [Fact]
    public async Task A_queued_request_whose_client_leaves_is_neither_forwarded_nor_answered()
    {
        using var waits = new MetricCollector<double>(_services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.http.queue.wait.duration");
        var cluster = Cluster("Http", "00:00:30", ("1", 1));
        var step = Step(new FakeTimeProvider(), cluster);
        var (context, _) = Request(cluster);
        using var aborted = new CancellationTokenSource();
        context.RequestAborted = aborted.Token;
        var rest = new Rest();

        var waiting = step.InvokeAsync(context, rest.InvokeAsync);
        await aborted.CancelAsync();
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.False(rest.Forwarded);
        Assert.Equal(StatusCodes.Status400BadRequest, context.Response.StatusCode); // counted as a cancelled request; nothing written
        Assert.Equal(0, context.Response.Body.Length);
        Assert.Equal(QueueResults.Abandoned, Assert.Single(waits.GetMeasurementSnapshot()).Tags["result"]);
    }

    [Fact]
    public async Task A_queued_request_is_not_sent_to_a_destination_that_left_the_available_ones_while_it_waited()
    {
        using var waits = new MetricCollector<double>(_services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.http.queue.wait.duration");
        var cluster = Cluster("Http", "00:00:30", ("1", 1));
        var step = Step(new FakeTimeProvider(), cluster);
        var (queued, feature) = Request(cluster);
        IReadOnlyList<DestinationState>? sentTo = null;

        var waiting = step.InvokeAsync(queued, _ =>
        {
            sentTo = feature.AvailableDestinations;
            return Task.CompletedTask;
        });
        Assert.False(waiting.IsCompleted);

        // a went down (health) or an operator drained it while the request waited: YARP took it out of the cluster's
        // available destinations. Its request in flight then failed and ended, freeing its place.
        var a = cluster.Destinations["a"];
        cluster.DestinationsState = new ClusterDestinationsState([a], []);
        a.ConcurrentRequestCount = 0;
        var (other, _) = Request(cluster);
        await step.InvokeAsync(other, _ => Task.CompletedTask);
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));

        // Not forwarded to the dead or drained server: no destination is left for it.
        Assert.True(sentTo is null || sentTo.Count == 0, $"sent to {string.Join(", ", sentTo?.Select(d => d.DestinationId) ?? [])}");
        Assert.Equal(QueueResults.NoDestination, Assert.Single(waits.GetMeasurementSnapshot()).Tags["result"]);
    }

    [Fact]
    public async Task A_queued_request_goes_to_a_destination_that_became_available_while_it_waited()
    {
        var cluster = Cluster("Http", "00:00:30", ("1", 1), ("1", 0));
        var a = cluster.Destinations["a"];
        var b = cluster.Destinations["b"];
        cluster.DestinationsState = new ClusterDestinationsState([a, b], [a]); // b is a backup, or not healthy yet
        var step = Step(new FakeTimeProvider(), cluster);
        var (queued, feature) = Request(cluster);
        var rest = new Rest();

        var waiting = step.InvokeAsync(queued, rest.InvokeAsync);
        Assert.False(waiting.IsCompleted);

        // a went down: YARP's available destinations are now b (a backup taking over, or a node back), which has room.
        cluster.DestinationsState = new ClusterDestinationsState([a, b], [b]);
        var (other, _) = Request(cluster);
        await step.InvokeAsync(other, _ => Task.CompletedTask);
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True(rest.Forwarded);
        Assert.Equal(["b"], feature.AvailableDestinations.Select(d => d.DestinationId));
    }

    [Fact]
    public async Task A_queued_xds_request_moved_to_the_repository_waits_for_the_repository_and_gets_a_soap_fault_when_none_is_left()
    {
        // The XDS step moved the request to the repository cluster: its route's cluster is still the registry, which has
        // room. The wait is for the repository's own destinations.
        var registry = Cluster("Http", "00:00:30", ("5", 0));
        var repository = new ClusterState("repo", new ClusterModel(Cluster("Http", "00:00:30", ("1", 1)).Model.Config with { ClusterId = "repo" }, s_invoker));
        var only = new DestinationState("r1", new DestinationModel(new DestinationConfig { Address = "http://127.0.0.1:9/", Metadata = new Dictionary<string, string> { ["MaxConcurrent"] = "1" } })) { ConcurrentRequestCount = 1 };
        repository.Destinations["r1"] = only;
        repository.DestinationsState = new ClusterDestinationsState([only], [only]);
        var time = new FakeTimeProvider();
        var step = Step(time, registry, repository);
        var (context, feature) = Request(registry);
        feature.Cluster = repository.Model;
        feature.AvailableDestinations = repository.DestinationsState.AvailableDestinations;
        context.Items[XdsRoutingStep.XdsTransactionItem] = XdsTransaction.ProvideAndRegisterDocumentSet;
        var rest = new Rest();

        var waiting = step.InvokeAsync(context, rest.InvokeAsync);
        Assert.False(waiting.IsCompleted);

        // The repository's only server goes down while the request waits (which frees no place): the wait sees it when
        // it looks again. A request of the registry that ends does not wake it (another cluster's place).
        repository.DestinationsState = new ClusterDestinationsState([only], []);
        var (other, _) = Request(registry);
        await step.InvokeAsync(other, _ => Task.CompletedTask);
        Assert.False(waiting.IsCompleted);
        time.Advance(PlaceQueues.Recheck);
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.False(rest.Forwarded);
        Assert.Equal(StatusCodes.Status503ServiceUnavailable, context.Response.StatusCode);
        context.Response.Body.Position = 0;
        var body = await new StreamReader(context.Response.Body).ReadToEndAsync();
        Assert.Contains("No healthy server in cluster", body, StringComparison.Ordinal);
        Assert.Contains("repo", body, StringComparison.Ordinal);
        Assert.Contains("for ITI-41; retry later.", body, StringComparison.Ordinal);
        Assert.Contains("Receiver", body, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_route_timeout_that_ends_the_wait_is_answered_as_every_route_timeout()
    {
        var cluster = Cluster("Http", "00:00:30", ("1", 1));
        var step = Step(new FakeTimeProvider(), cluster);
        var (context, _) = Request(cluster);
        using var deadline = new CancellationTokenSource();
        context.RequestAborted = deadline.Token;
        context.Features.Set<IHttpRequestTimeoutFeature>(new RouteTimeout(deadline.Token));
        var rest = new Rest();
        var timeoutStep = new RequestTimeoutStep(NullLogger<RequestTimeoutStep>.Instance);

        var waiting = timeoutStep.InvokeAsync(context, c => step.InvokeAsync(c, rest.InvokeAsync));
        await deadline.CancelAsync();
        await waiting.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.False(rest.Forwarded);
        Assert.Equal(StatusCodes.Status504GatewayTimeout, context.Response.StatusCode);
        Assert.True(RequestTimeoutStep.TimedOut(context)); // counted with error="RequestTimeout", as every route timeout
    }

    [Fact]
    public async Task Queued_requests_are_served_in_arrival_order_one_per_request_that_ends()
    {
        var cluster = Cluster("Http", "00:00:30", ("1", 1));
        var a = cluster.Destinations["a"];
        var step = Step(new FakeTimeProvider(), cluster);
        var (firstContext, _) = Request(cluster);
        var (secondContext, _) = Request(cluster);
        var firstRest = new HeldRest(a);
        var secondRest = new HeldRest(a);
        var first = step.InvokeAsync(firstContext, firstRest.InvokeAsync);
        var second = step.InvokeAsync(secondContext, secondRest.InvokeAsync);
        Assert.False(first.IsCompleted);
        Assert.False(second.IsCompleted);

        // a's request ends, and one more of the cluster: one place, which goes to the request that came first. The second
        // is not woken for it (the fake clock never moves, so it cannot look again on its own).
        a.ConcurrentRequestCount = 0;
        var (other, _) = Request(cluster);
        await step.InvokeAsync(other, _ => Task.CompletedTask);
        await firstRest.Forwarded.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.False(secondRest.Forwarded.IsCompleted);
        Assert.Equal(1, a.ConcurrentRequestCount);

        // The first request ends: its place goes to the second.
        firstRest.End();
        await first.WaitAsync(TimeSpan.FromSeconds(10));
        await secondRest.Forwarded.WaitAsync(TimeSpan.FromSeconds(10));
        secondRest.End();
        await second.WaitAsync(TimeSpan.FromSeconds(10));
    }

    /// <summary>The rest of the pipeline as YARP runs it: the request counts on its destination until <see cref="End"/>.</summary>
    private sealed class HeldRest(DestinationState destination)
    {
        private readonly TaskCompletionSource _forwarded = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _end = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public Task Forwarded => _forwarded.Task;

        public void End() => _end.TrySetResult();

        public async Task InvokeAsync(HttpContext context)
        {
            destination.ConcurrentRequestCount++;
            _forwarded.TrySetResult();
            await _end.Task;
            destination.ConcurrentRequestCount--;
        }
    }

    /// <summary>The rest of the pipeline after the step: records that the request was sent on.</summary>
    private sealed class Rest
    {
        public bool Forwarded { get; private set; }

        public Task InvokeAsync(HttpContext context)
        {
            Forwarded = true;
            return Task.CompletedTask;
        }
    }

    private sealed class RouteTimeout(CancellationToken token) : IHttpRequestTimeoutFeature
    {
        public CancellationToken RequestTimeoutToken => token;

        public void DisableTimeout()
        {
        }
    }

    [Fact]
    public async Task A_destination_at_its_limit_is_passed_over_and_counted()
    {
        using var reached = new MetricCollector<long>(_services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.destination.limit_reached");
        var cluster = Cluster("Http", ("2", 2), (null, 50), ("3", 2));

        var (forwarded, available, _) = await RouteAsync(cluster);

        Assert.True(forwarded);
        Assert.Equal(["b", "c"], available.Select(d => d.DestinationId));
        var pass = Assert.Single(reached.GetMeasurementSnapshot());
        Assert.Equal("a", pass.Tags["destination"]);
        Assert.Equal("http", pass.Tags["protocol"]);
    }

    [Fact]
    public async Task A_cluster_without_limits_or_with_room_keeps_its_available_destinations()
    {
        var unlimited = Cluster("Http", (null, 9), (null, 9));
        var (_, available, _) = await RouteAsync(unlimited);
        Assert.Same(unlimited.DestinationsState.AvailableDestinations, available);

        var roomy = Cluster("Http", ("10", 9), (null, 9));
        (_, available, _) = await RouteAsync(roomy);
        Assert.Same(roomy.DestinationsState.AvailableDestinations, available);
    }

    [Fact]
    public async Task When_every_destination_is_full_the_request_gets_503_with_retry_after()
    {
        var (forwarded, _, context) = await RouteAsync(Cluster("Http", ("1", 1), ("2", 3)));

        Assert.False(forwarded);
        Assert.Equal(StatusCodes.Status503ServiceUnavailable, context.Response.StatusCode);
        Assert.Equal("5", context.Response.Headers.RetryAfter.ToString());
        Assert.Equal("text/plain; charset=utf-8", context.Response.ContentType);
        context.Response.Body.Position = 0;
        Assert.Equal("503 Service Unavailable: Every server in cluster 'c' is at its MaxConcurrent; retry later.\n", await new StreamReader(context.Response.Body).ReadToEndAsync());
    }

    [Fact]
    public async Task An_xds_request_to_a_full_cluster_gets_a_soap_fault()
    {
        var (forwarded, _, context) = await RouteAsync(Cluster("Http", ("1", 1)), c => c.Items[XdsRoutingStep.XdsTransactionItem] = XdsTransaction.ProvideAndRegisterDocumentSet);

        Assert.False(forwarded);
        Assert.Equal(StatusCodes.Status503ServiceUnavailable, context.Response.StatusCode);
        context.Response.Body.Position = 0;
        var body = await new StreamReader(context.Response.Body).ReadToEndAsync();
        Assert.Contains("is at its MaxConcurrent; retry later. (ITI-41)", body, StringComparison.Ordinal);
        Assert.Contains("Receiver", body, StringComparison.Ordinal);
    }

    [Fact]
    public void A_dicom_association_goes_to_a_node_below_its_limit_and_is_counted_there()
    {
        var cluster = Cluster("Dicom", ("1", 0), ("1", 0));
        var selector = new DicomDestinationSelector(new WeightedPicker(DestinationWeights.WeightsOnly), _limits);

        var first = selector.PickAndAcquire(cluster, cluster.DestinationsState.AvailableDestinations);
        var second = selector.PickAndAcquire(cluster, cluster.DestinationsState.AvailableDestinations);
        var third = selector.PickAndAcquire(cluster, cluster.DestinationsState.AvailableDestinations);

        Assert.NotNull(first);
        Assert.NotNull(second);
        Assert.NotSame(first, second);
        Assert.Null(third);
        Assert.All(cluster.Destinations.Values, d => Assert.Equal(1, d.ConcurrentRequestCount));

        selector.Release(cluster, first);
        Assert.Same(first, selector.PickAndAcquire(cluster, cluster.DestinationsState.AvailableDestinations));
    }

    [Fact]
    public void Concurrent_associations_never_take_a_node_past_its_limit()
    {
        var cluster = Cluster("Dicom", ("3", 0), ("2", 0));
        var selector = new DicomDestinationSelector(new WeightedPicker(DestinationWeights.WeightsOnly), _limits);

        var picked = new DestinationState?[64];
        Parallel.For(0, picked.Length, i => picked[i] = selector.PickAndAcquire(cluster, cluster.DestinationsState.AvailableDestinations));

        Assert.Equal(5, picked.Count(p => p is not null));
        Assert.Equal(3, cluster.Destinations["a"].ConcurrentRequestCount);
        Assert.Equal(2, cluster.Destinations["b"].ConcurrentRequestCount);
    }

    [Fact]
    public void A_node_filled_between_the_check_and_the_count_is_passed_over_not_taken_past_its_limit()
    {
        // The random draw stands for the moment between the limit check and the count: another association takes a's
        // last place then.
        var cluster = Cluster("Dicom", ("1", 0), ("1", 0));
        var a = cluster.Destinations["a"];
        var raced = false;
        var selector = new DicomDestinationSelector(new WeightedPicker(DestinationWeights.WeightsOnly, n =>
        {
            if (!raced)
            {
                raced = true;
                a.ConcurrentRequestCount = 1;
            }

            return 0; // a
        }), _limits);
        var config = cluster.Model.Config with { LoadBalancingPolicy = "Random" };
        var random = new ClusterState("c", new ClusterModel(config, s_invoker));

        var picked = selector.PickAndAcquire(random, cluster.DestinationsState.AvailableDestinations);

        Assert.Equal("b", picked?.DestinationId);
        Assert.Equal(1, a.ConcurrentRequestCount);
        Assert.Equal(1, cluster.Destinations["b"].ConcurrentRequestCount);
    }

    [Fact]
    public async Task A_queued_association_is_woken_by_the_next_release_and_its_tries_are_not_counted_as_passes()
    {
        using var reached = new MetricCollector<long>(_services.GetRequiredService<IMeterFactory>(), "ImagingProxy", "imagingproxy.destination.limit_reached");
        var cluster = Cluster("Dicom", ("1", 0));
        var selector = new DicomDestinationSelector(new WeightedPicker(DestinationWeights.WeightsOnly), _limits);
        var held = selector.PickAndAcquire(cluster, cluster.DestinationsState.AvailableDestinations)!;

        // Taken before the pick that finds the node full, as the queue does: the release after it completes it.
        using var waiter = selector.EnterQueue(cluster);
        var released = waiter.Next();
        Assert.Null(selector.PickAndAcquire(cluster, cluster.DestinationsState.AvailableDestinations, countFull: false));
        Assert.False(released.IsCompleted);
        Assert.Empty(reached.GetMeasurementSnapshot());

        selector.Release(cluster, held);

        await released.WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Same(held, selector.PickAndAcquire(cluster, cluster.DestinationsState.AvailableDestinations, countFull: false));
    }

    [Fact]
    public void Queued_associations_are_woken_one_per_release_in_arrival_order()
    {
        var cluster = Cluster("Dicom", ("1", 0));
        var other = new ClusterState("other", new ClusterModel(cluster.Model.Config with { ClusterId = "other" }, s_invoker));
        var selector = new DicomDestinationSelector(new WeightedPicker(DestinationWeights.WeightsOnly), _limits);
        var held = selector.PickAndAcquire(cluster, cluster.DestinationsState.AvailableDestinations)!;
        using var first = selector.EnterQueue(cluster);
        using var second = selector.EnterQueue(cluster);
        var firstWoken = first.Next();
        var secondWoken = second.Next();

        // A release in another cluster wakes no one here; one here wakes the association that came first, only.
        selector.Acquire(held);
        selector.Release(other, held);
        Assert.False(firstWoken.IsCompleted);
        selector.Release(cluster, held);
        Assert.True(firstWoken.IsCompleted);
        Assert.False(secondWoken.IsCompleted);

        // The next release wakes the second (the first holds its wake-up until it looks again).
        selector.Acquire(held);
        selector.Release(cluster, held);
        Assert.True(secondWoken.IsCompleted);
    }

    [Fact]
    public void A_waiter_that_leaves_with_a_wake_up_it_did_not_look_with_hands_it_to_the_next()
    {
        var queues = new PlaceQueues();
        var first = queues.Enter("c");
        using var second = queues.Enter("c");
        using var third = queues.Enter("c");
        _ = first.Next();
        var secondWoken = second.Next();
        var thirdWoken = third.Next();

        queues.Released("C"); // cluster names are case-insensitive, as YARP's
        Assert.False(secondWoken.IsCompleted);
        first.Dispose(); // its timeout, or its client left, before it looked
        Assert.True(secondWoken.IsCompleted);
        Assert.False(thirdWoken.IsCompleted);
        Assert.Equal(2, queues.Waiting("c"));

        // One that looked with its wake-up (a new Next) and then leaves has nothing to hand on.
        secondWoken = second.Next();
        second.Dispose();
        Assert.False(thirdWoken.IsCompleted);
        Assert.Equal(1, queues.Waiting("c"));
    }

    [Theory]
    [InlineData(null, 0)]
    [InlineData("4", 4)]
    [InlineData("0", 0)]
    [InlineData("-1", 0)]
    [InlineData("four", 0)]
    public void Max_of_reads_a_positive_whole_number(string? text, int expected)
        => Assert.Equal(expected, DestinationLimits.MaxOf(new DestinationConfig
        {
            Address = "tcp://127.0.0.1:9",
            Metadata = text is null ? null : new Dictionary<string, string> { ["MaxConcurrent"] = text },
        }));
}
