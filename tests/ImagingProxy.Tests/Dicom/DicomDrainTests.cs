using ImagingProxy.Dicom;
using ImagingProxy.Hosting;
using ImagingProxy.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;

namespace ImagingProxy.Tests.Dicom;

public sealed class DicomDrainTests
{
    [Theory]
    [InlineData(DicomConnectionStage.AwaitingRequest, false, false, DrainAction.Proceed)]
    [InlineData(DicomConnectionStage.RequestReceived, false, false, DrainAction.Proceed)]
    [InlineData(DicomConnectionStage.Relaying, false, false, DrainAction.Proceed)]
    [InlineData(DicomConnectionStage.AwaitingRequest, true, false, DrainAction.Proceed)]
    [InlineData(DicomConnectionStage.RequestReceived, true, false, DrainAction.RejectTransient)]
    [InlineData(DicomConnectionStage.Connecting, true, false, DrainAction.Proceed)]
    [InlineData(DicomConnectionStage.Relaying, true, false, DrainAction.Proceed)]
    [InlineData(DicomConnectionStage.RequestReceived, true, true, DrainAction.Abort)]
    [InlineData(DicomConnectionStage.Relaying, true, true, DrainAction.Abort)]
    public void Decide_keeps_relaying_associations_rejects_new_ones_and_aborts_at_the_deadline(DicomConnectionStage stage, bool draining, bool deadlinePassed, DrainAction expected)
        => Assert.Equal(expected, DicomDrain.Decide(stage, draining, deadlinePassed));

    [Theory]
    [InlineData(300, 298)]
    [InlineData(30, 28)]
    [InlineData(5, 4.5)]
    [InlineData(0, 0)]
    public void The_deadline_leaves_a_margin_before_kestrel_aborts(double shutdownSeconds, double expectedSeconds)
        => Assert.Equal(TimeSpan.FromSeconds(expectedSeconds), ConnectionDrain.DeadlineFor(TimeSpan.FromSeconds(shutdownSeconds)));

    [Fact]
    public void The_deadline_fires_only_after_stopping_began_and_the_deadline_passed()
    {
        var time = new FakeTimeProvider();
        var lifetime = new HandlerHarness.FakeLifetime();
        using var drain = new ConnectionDrain(lifetime, Options.Create(new HostOptions { ShutdownTimeout = TimeSpan.FromSeconds(10) }), time, NullLogger<ConnectionDrain>.Instance);

        time.Advance(TimeSpan.FromMinutes(5));
        Assert.False(drain.IsDraining);
        Assert.False(drain.Deadline.IsCancellationRequested);

        lifetime.StopApplication();
        Assert.True(drain.IsDraining);
        time.Advance(TimeSpan.FromSeconds(8.9));
        Assert.False(drain.Deadline.IsCancellationRequested);
        time.Advance(TimeSpan.FromSeconds(0.1));
        Assert.True(drain.Deadline.IsCancellationRequested);
    }

    [Fact]
    public async Task Http_requests_still_under_way_at_the_deadline_are_logged_as_cut()
    {
        var time = new FakeTimeProvider();
        var lifetime = new HandlerHarness.FakeLifetime();
        using var services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        using var http = new HttpProxyMetrics(services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>());
        var logs = new FakeLogCollector();
        using var drain = new ConnectionDrain(lifetime, Options.Create(new HostOptions { ShutdownTimeout = TimeSpan.FromSeconds(10) }), time, new FakeLogger<ConnectionDrain>(logs), http);
        var response = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var request = http.InvokeAsync(ImagingProxy.Tests.Telemetry.HttpProxyMetricsTests.Context("all", "web", "a"), _ => response.Task);
        Assert.Equal(1, http.InFlight);

        lifetime.StopApplication();
        time.Advance(TimeSpan.FromSeconds(9));

        var cut = Assert.Single(logs.GetSnapshot(), r => r.Id.Id == 314);
        Assert.Equal(LogLevel.Warning, cut.Level);
        Assert.StartsWith("Drain deadline: 1 proxied HTTP request(s) still under way are cut", cut.Message, StringComparison.Ordinal);
        response.SetResult();
        await request;
        Assert.Equal(0, http.InFlight);
    }
}
