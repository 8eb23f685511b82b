using ImagingProxy.Forwarding;
using ImagingProxy.Telemetry;
using ImagingProxy.Tests.Support;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Telemetry;

public sealed class HttpProxyMetricsTests : IDisposable
{
    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly HttpProxyMetrics _metrics;
    private readonly MetricCollector<long> _requests;
    private readonly MetricCollector<double> _duration;
    private readonly MetricCollector<long> _xds;

    public HttpProxyMetricsTests()
    {
        var factory = _services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>();
        _metrics = new HttpProxyMetrics(factory);
        _requests = new MetricCollector<long>(factory, ImagingProxyTelemetry.MeterName, "imagingproxy.http.requests");
        _duration = new MetricCollector<double>(factory, ImagingProxyTelemetry.MeterName, "imagingproxy.http.request.duration");
        _xds = new MetricCollector<long>(factory, ImagingProxyTelemetry.MeterName, "imagingproxy.xds.transactions");
    }

    [Fact]
    public async Task A_proxied_request_is_counted_with_route_cluster_destination_and_status()
    {
        var context = Context("dicomweb", "pacs-web", "orthanc-a");

        await _metrics.InvokeAsync(context, _ =>
        {
            context.Response.StatusCode = 206;
            return Task.CompletedTask;
        });

        var request = Assert.Single(_requests.GetMeasurementSnapshot());
        Assert.Equal(1, request.Value);
        Assert.Equal("dicomweb", request.Tags["route"]);
        Assert.Equal("pacs-web", request.Tags["cluster"]);
        Assert.Equal("orthanc-a", request.Tags["destination"]);
        Assert.Equal(206, request.Tags["http.response.status_code"]);
        Assert.Equal("none", request.Tags["error"]);
        var duration = Assert.Single(_duration.GetMeasurementSnapshot());
        Assert.True(duration.Value >= 0);
        Assert.Equal("dicomweb", duration.Tags["route"]);
        Assert.Empty(_xds.GetMeasurementSnapshot());
    }

    [Fact]
    public async Task No_destination_and_forwarder_errors_are_labelled()
    {
        var context = Context("dicomweb", "pacs-web", destination: null);
        context.Features.Set<IForwarderErrorFeature>(new ErrorFeature(ForwarderError.NoAvailableDestinations));

        await _metrics.InvokeAsync(context, _ =>
        {
            context.Response.StatusCode = 503;
            return Task.CompletedTask;
        });

        var request = Assert.Single(_requests.GetMeasurementSnapshot());
        Assert.Equal("none", request.Tags["destination"]);
        Assert.Equal("NoAvailableDestinations", request.Tags["error"]);
        Assert.Equal(503, request.Tags["http.response.status_code"]);
    }

    [Fact]
    public async Task A_request_that_throws_is_still_recorded()
    {
        var context = Context("dicomweb", "pacs-web", "orthanc-a");

        await Assert.ThrowsAsync<InvalidOperationException>(() => _metrics.InvokeAsync(context, _ => throw new InvalidOperationException("boom")));

        Assert.Single(_requests.GetMeasurementSnapshot());
        Assert.Single(_duration.GetMeasurementSnapshot());
    }

    [Fact]
    public async Task The_status_code_tag_is_one_shared_box_per_code_not_one_per_request()
    {
        for (var i = 0; i < 2; i++)
        {
            var context = Context(XdsRouteProvider.RouteId, "registry", "reg1");
            context.Items[XdsRoutingStep.XdsTransactionItem] = XdsTransaction.RegistryStoredQuery;
            await _metrics.InvokeAsync(context, _ =>
            {
                context.Response.StatusCode = 404;
                return Task.CompletedTask;
            });
        }

        var requests = _requests.GetMeasurementSnapshot();
        var xds = _xds.GetMeasurementSnapshot();
        Assert.Equal(2, requests.Count);
        Assert.Equal(2, xds.Count);
        var tag = requests[0].Tags["http.response.status_code"];
        Assert.Equal(404, tag);
        Assert.Same(tag, requests[1].Tags["http.response.status_code"]);
        Assert.Same(tag, xds[0].Tags["http.response.status_code"]);
        Assert.Same(tag, xds[1].Tags["http.response.status_code"]);
    }

    [Theory]
    [InlineData(100)]
    [InlineData(599)]
    [InlineData(600)]
    [InlineData(999)]
    public async Task Status_codes_at_and_beyond_the_cached_range_are_labelled_as_they_are(int statusCode)
    {
        var context = Context("dicomweb", "pacs-web", "orthanc-a");

        await _metrics.InvokeAsync(context, _ =>
        {
            context.Response.StatusCode = statusCode;
            return Task.CompletedTask;
        });

        Assert.Equal(statusCode, Assert.Single(_requests.GetMeasurementSnapshot()).Tags["http.response.status_code"]);
    }

    [Theory]
    [InlineData(XdsTransaction.RegistryStoredQuery, "ITI-18")]
    [InlineData(XdsTransaction.ProvideAndRegisterDocumentSet, "ITI-41")]
    [InlineData(XdsTransaction.RetrieveDocumentSet, "ITI-43")]
    public async Task Xds_requests_are_counted_by_iti_transaction(XdsTransaction transaction, string iti)
    {
        var context = Context(XdsRouteProvider.RouteId, "registry", "reg1");
        context.Items[XdsRoutingStep.XdsTransactionItem] = transaction;

        await _metrics.InvokeAsync(context, _ => Task.CompletedTask);

        var xds = Assert.Single(_xds.GetMeasurementSnapshot());
        Assert.Equal(iti, xds.Tags["transaction"]);
        Assert.Equal(200, xds.Tags["http.response.status_code"]);
    }

    [Fact]
    public async Task An_xds_request_without_an_action_is_missing()
    {
        var context = Context(XdsRouteProvider.RouteId, "registry", "reg1");
        context.Request.ContentType = "application/soap+xml";

        await _metrics.InvokeAsync(context, _ => Task.CompletedTask);

        Assert.Equal("missing", Assert.Single(_xds.GetMeasurementSnapshot()).Tags["transaction"]);
    }

    public void Dispose()
    {
        _requests.Dispose();
        _duration.Dispose();
        _xds.Dispose();
        _metrics.Dispose();
        _services.Dispose();
    }

    internal static DefaultHttpContext Context(string route, string cluster, string? destination)
    {
        var clusterConfig = new ClusterConfig { ClusterId = cluster };
        var clusterState = new ClusterState(cluster, new ClusterModel(clusterConfig, new HttpMessageInvoker(new SocketsHttpHandler())));
        var context = new DefaultHttpContext();
        context.Features.Set<IReverseProxyFeature>(new TestReverseProxyFeature
        {
            Route = new RouteModel(new RouteConfig { RouteId = route, ClusterId = cluster }, clusterState, HttpTransformer.Empty),
            Cluster = clusterState.Model,
            ProxiedDestination = destination is null ? null : new DestinationState(destination),
        });
        return context;
    }

    private sealed class ErrorFeature(ForwarderError error) : IForwarderErrorFeature
    {
        public ForwarderError Error => error;

        public Exception? Exception => null;
    }
}
