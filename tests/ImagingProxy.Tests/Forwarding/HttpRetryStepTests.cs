using ImagingProxy.Configuration;
using ImagingProxy.Forwarding;
using ImagingProxy.Telemetry;
using ImagingProxy.Tests.Support;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Forwarding;

public sealed class HttpRetryStepTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly HttpProxyMetrics _metrics;

    public HttpRetryStepTests() => _metrics = new HttpProxyMetrics(_services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());

    [Fact]
    public async Task An_answer_kept_back_for_a_client_that_went_away_is_not_sent_and_the_request_ends_with_502()
    {
        using var aborted = new CancellationTokenSource();
        var (context, feature) = Context(aborted.Token, "a", "b");
        var step = new HttpRetryStep(_metrics, NullLogger<HttpRetryStep>.Instance);
        var attempts = 0;

        await step.InvokeAsync(context, _ =>
        {
            // What the response transform leaves when it keeps an answer back: status and headers, no body.
            attempts++;
            var retryable = context.Features.Get<RetryableStatus>()!;
            Assert.True(retryable.CanRetry);
            feature.ProxiedDestination = feature.AvailableDestinations[0];
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            context.Response.ContentLength = 17;
            context.Response.Headers["X-Failed"] = "a";
            retryable.KeptBack = StatusCodes.Status503ServiceUnavailable;
            aborted.Cancel();
            return Task.CompletedTask;
        });

        Assert.Equal(1, attempts);
        Assert.Equal(StatusCodes.Status502BadGateway, context.Response.StatusCode);
        Assert.Empty(context.Response.Headers);
    }

    [Fact]
    public async Task An_answer_kept_back_when_the_route_Timeout_fires_ends_the_request_with_504_counted_as_a_timeout()
    {
        // ASP.NET Core's request timeout cancels RequestAborted too (a linked token): the timeout fires between the
        // kept-back answer and the retry.
        using var timeout = new CancellationTokenSource();
        var (context, feature) = Context(timeout.Token, "a", "b");
        context.Features.Set<Microsoft.AspNetCore.Http.Timeouts.IHttpRequestTimeoutFeature>(new TimeoutFeature(timeout.Token));
        var retry = new HttpRetryStep(_metrics, NullLogger<HttpRetryStep>.Instance);
        var outer = new RequestTimeoutStep(NullLogger<RequestTimeoutStep>.Instance);

        await outer.InvokeAsync(context, _ => retry.InvokeAsync(context, _ =>
        {
            var retryable = context.Features.Get<RetryableStatus>()!;
            feature.ProxiedDestination = feature.AvailableDestinations[0];
            context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
            context.Response.Headers["X-Failed"] = "a";
            retryable.KeptBack = StatusCodes.Status503ServiceUnavailable;
            timeout.Cancel();
            return Task.CompletedTask;
        }));

        Assert.Equal(StatusCodes.Status504GatewayTimeout, context.Response.StatusCode);
        Assert.Empty(context.Response.Headers);
        Assert.True(RequestTimeoutStep.TimedOut(context)); // the request metric's error="RequestTimeout"
    }

    [Fact]
    public async Task A_spare_backup_that_goes_down_during_the_attempt_still_gets_the_promised_retry()
    {
        // One primary and one backup with active health. The primary's 503 is kept back on the backup's account; a probe
        // takes the backup out meanwhile: the retry promised still follows (or the 503 would become a 502).
        var primaryConfig = new DestinationConfig { Address = "http://p/" };
        var backupConfig = new DestinationConfig { Address = "http://dr/", Metadata = new Dictionary<string, string> { ["Backup"] = "true" } };
        var config = new ClusterConfig
        {
            ClusterId = "web",
            Metadata = new Dictionary<string, string> { ["Retry.StatusCodes"] = "503", [MetadataKeys.ActiveHealthCheckEnabled] = "true" },
            Destinations = new Dictionary<string, DestinationConfig> { ["p"] = primaryConfig, ["dr"] = backupConfig },
        };
        var cluster = new ClusterState("web", new ClusterModel(config, new HttpMessageInvoker(new SocketsHttpHandler())));
        var p = new DestinationState("p", new DestinationModel(primaryConfig));
        var dr = new DestinationState("dr", new DestinationModel(backupConfig)) { Health = { Active = DestinationHealth.Healthy } };
        var context = new DefaultHttpContext();
        context.Request.Method = HttpMethods.Get;
        var feature = new TestReverseProxyFeature
        {
            Route = new RouteModel(new RouteConfig { RouteId = "all", ClusterId = "web" }, cluster, HttpTransformer.Empty),
            Cluster = cluster.Model,
            AllDestinations = [p, dr],
            AvailableDestinations = [p],
        };
        context.Features.Set<IReverseProxyFeature>(feature);
        var step = new HttpRetryStep(_metrics, NullLogger<HttpRetryStep>.Instance);
        var sentTo = new List<string>();

        await step.InvokeAsync(context, _ =>
        {
            var destination = feature.AvailableDestinations[0];
            sentTo.Add(destination.DestinationId);
            feature.ProxiedDestination = destination;
            if (destination == p)
            {
                var retryable = context.Features.Get<RetryableStatus>()!;
                Assert.True(retryable.CanRetry);
                context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
                retryable.KeptBack = StatusCodes.Status503ServiceUnavailable;
                dr.Health.Active = DestinationHealth.Unhealthy; // a probe, meanwhile
            }
            else
            {
                context.Response.StatusCode = StatusCodes.Status200OK;
            }

            return Task.CompletedTask;
        });

        Assert.Equal(["p", "dr"], sentTo);
        Assert.Equal(StatusCodes.Status200OK, context.Response.StatusCode);
    }

    public void Dispose()
    {
        _metrics.Dispose();
        _services.Dispose();
    }

    private sealed class TimeoutFeature(CancellationToken token) : Microsoft.AspNetCore.Http.Timeouts.IHttpRequestTimeoutFeature
    {
        public CancellationToken RequestTimeoutToken => token;

        public void DisableTimeout()
        {
        }
    }

    private static (DefaultHttpContext Context, TestReverseProxyFeature Feature) Context(CancellationToken aborted, params string[] destinations)
    {
        var config = new ClusterConfig { ClusterId = "web", Metadata = new Dictionary<string, string> { ["Retry.StatusCodes"] = "503" } };
        var cluster = new ClusterState("web", new ClusterModel(config, new HttpMessageInvoker(new SocketsHttpHandler())));
        var context = new DefaultHttpContext { RequestAborted = aborted };
        context.Request.Method = HttpMethods.Get;
        var feature = new TestReverseProxyFeature
        {
            Route = new RouteModel(new RouteConfig { RouteId = "all", ClusterId = "web" }, cluster, HttpTransformer.Empty),
            Cluster = cluster.Model,
            AvailableDestinations = destinations.Select(d => new DestinationState(d)).ToArray(),
        };
        context.Features.Set<IReverseProxyFeature>(feature);
        return (context, feature);
    }
}
