using System.Diagnostics.Metrics;
using ImagingProxy.Dicom;
using ImagingProxy.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace ImagingProxy.Tests.Dicom;

/// <summary>DIMSE status classes (PS3.7 Annex C) on <c>imagingproxy.dicom.dimse.operations</c> and <c>imagingproxy.dicom.associations.started</c>.</summary>
public sealed class DicomProxyMetricsTests : IDisposable
{
    private const string Operations = "imagingproxy.dicom.dimse.operations";
    private const string StatusClassTag = "dimse.status_class";

    private static readonly TimeSpan s_bounded = TimeSpan.FromSeconds(10);

    private readonly ServiceProvider _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
    private readonly DicomProxyMetrics _metrics;

    public DicomProxyMetricsTests() => _metrics = new DicomProxyMetrics(Factory, new TagValueLimiter(null, 2));

    private IMeterFactory Factory => _services.GetRequiredService<IMeterFactory>();

    [Theory]
    [InlineData(0x0000, "success")]
    [InlineData(0x0001, "warning")]
    [InlineData(0x0107, "warning")]
    [InlineData(0x0116, "warning")]
    [InlineData(0xB000, "warning")]
    [InlineData(0xB007, "warning")]
    [InlineData(0xBFFF, "warning")]
    [InlineData(0xFE00, "cancel")]
    [InlineData(0xFF00, "pending")]
    [InlineData(0xFF01, "pending")]
    [InlineData(0xA700, "failure")]
    [InlineData(0xA7FF, "failure")]
    [InlineData(0xA900, "failure")]
    [InlineData(0xC000, "failure")]
    [InlineData(0xCFFF, "failure")]
    [InlineData(0x0122, "failure")]
    [InlineData(0x0110, "failure")]
    [InlineData(0x0211, "failure")]
    [InlineData(0x0002, "failure")]
    [InlineData(0xAFFF, "failure")]
    [InlineData(0xC001, "failure")]
    [InlineData(0xFE01, "failure")]
    [InlineData(0xFF02, "failure")]
    [InlineData(0xFFFF, "failure")]
    public void Status_class_follows_PS3_7_annex_C(int status, string expected)
        => Assert.Equal(expected, DicomProxyMetrics.StatusClassName((ushort)status));

    [Fact]
    public void Responses_carry_a_status_class_and_requests_none()
    {
        using var operations = new MetricCollector<long>(Factory, DicomProxyMetrics.MeterName, Operations);

        _metrics.DimseOperation("l", "c", DimseCommandField.CStoreRequest);
        _metrics.DimseOperation("l", "c", DimseCommandField.CStoreResponse, 0x0000);
        _metrics.DimseOperation("l", "c", DimseCommandField.CStoreResponse, 0xB007);
        _metrics.DimseOperation("l", "c", DimseCommandField.CStoreResponse, 0xA700);
        _metrics.DimseOperation("l", "c", DimseCommandField.CFindResponse, 0xFF00);
        _metrics.DimseOperation("l", "c", DimseCommandField.CMoveResponse, 0xFE00);
        _metrics.DimseOperation("l", "c", DimseCommandField.CCancelRequest, 0xFE00);
        _metrics.DimseOperation("l", "c", DimseCommandField.NSetResponse);
        _metrics.DimseOperation("l", "c", (DimseCommandField)0x1234);
        _metrics.DimseOperation("l", "c", (DimseCommandField)0x9234, 0x0000);

        var snapshot = operations.GetMeasurementSnapshot();
        Assert.Equal(10, snapshot.Count);
        Assert.All(snapshot, m => Assert.Equal(1, m.Value));
        Assert.Equal(
            ["C-STORE-RQ:-", "C-STORE-RSP:success", "C-STORE-RSP:warning", "C-STORE-RSP:failure", "C-FIND-RSP:pending", "C-MOVE-RSP:cancel", "C-CANCEL-RQ:-", "N-SET-RSP:unknown", "other:-", "other:success"],
            snapshot.Select(m => $"{m.Tags["dicom.command_field"]}:{(m.Tags.TryGetValue(StatusClassTag, out var value) ? value : "-")}"));
        Assert.All(snapshot, m =>
        {
            Assert.Equal("l", m.Tags["listener"]);
            Assert.Equal("c", m.Tags["cluster"]);
        });
    }

    [Fact]
    public void Relay_events_count_the_observed_commands_with_the_status_of_each_response()
    {
        using var operations = new MetricCollector<long>(Factory, DicomProxyMetrics.MeterName, Operations);
        var association = new DicomAssociation("a1", "dicom", null, 0) { ClusterId = "pacs" };
        var fromClient = new DimseObserver(new DicomRelayEvents(association, fromClient: true, _metrics));
        var fromNode = new DimseObserver(new DicomRelayEvents(association, fromClient: false, _metrics));

        fromClient.Observe([.. DicomCaptures.AssociateRequest, .. DicomCaptures.EchoRequestPData]);
        fromNode.Observe([.. DicomCaptures.AssociateAccept, .. DicomCaptures.EchoResponsePData, .. EchoResponsePData(2, 0xC211), .. EchoResponsePData(3, 0xFF01)]);

        var snapshot = operations.GetMeasurementSnapshot();
        Assert.Equal(
            ["C-ECHO-RQ:-", "C-ECHO-RSP:success", "C-ECHO-RSP:failure", "C-ECHO-RSP:pending"],
            snapshot.Select(m => $"{m.Tags["dicom.command_field"]}:{(m.Tags.TryGetValue(StatusClassTag, out var value) ? value : "-")}"));
        Assert.All(snapshot, m =>
        {
            Assert.Equal("dicom", m.Tags["listener"]);
            Assert.Equal("pacs", m.Tags["cluster"]);
        });
    }

    [Fact]
    public void Counting_a_response_with_its_status_class_does_not_allocate()
    {
        long responses = 0;
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == DicomProxyMetrics.MeterName && instrument.Name == Operations)
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == StatusClassTag)
                {
                    responses += value;
                }
            }
        });
        listener.Start();
        var association = new DicomAssociation("a1", "dicom", null, 0) { ClusterId = "pacs" };
        var observer = new DimseObserver(new DicomRelayEvents(association, fromClient: false, _metrics));
        var pdu = EchoResponsePData(7, 0xA700);
        for (var i = 0; i < 100; i++)
        {
            observer.Observe(pdu); // warm-up: first calls (JIT tiers, the limiter's caches) may allocate once
        }

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            observer.Observe(pdu);
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.Equal(1100, responses);
    }

    [Fact]
    public async Task Associations_started_counts_each_request_read_before_routing_with_limited_ae_titles()
    {
        await using var harness = new HandlerHarness();
        using var started = harness.Collect("imagingproxy.dicom.associations.started");
        using var ended = harness.Collect("imagingproxy.dicom.associations");
        harness.Lifetime.StopApplication();

        // Both requests are read, then refused by the drain: started before any routing decision.
        var first = harness.Connect();
        await first.SendAsync(DicomCaptures.AssociateRequest);
        await first.Run.WaitAsync(s_bounded);
        var request = DicomCaptures.AssociateRequest;
        Assert.True(AeTitleRewriter.TryRewriteCalledAeTitle(request, "SOMEWHERE"));
        var second = harness.Connect();
        await second.SendAsync(request);
        await second.Run.WaitAsync(s_bounded);

        // A connection that never sends an A-ASSOCIATE-RQ is not started (it still ends).
        var third = harness.Connect();
        await third.SendAsync(DicomCaptures.ReleaseRequest);
        await third.Run.WaitAsync(s_bounded);

        var measurements = started.GetMeasurementSnapshot();
        Assert.Equal(2, measurements.Count);
        Assert.All(measurements, m =>
        {
            Assert.Equal(1, m.Value);
            Assert.Equal(["dicom.called_ae_title", "dicom.calling_ae_title", "listener"], m.Tags.Keys.Order(StringComparer.Ordinal));
            Assert.Equal("ECHOSCU", m.Tags["dicom.calling_ae_title"]);
        });
        Assert.Equal("STORESCP", measurements[0].Tags["dicom.called_ae_title"]);
        Assert.Equal("other", measurements[1].Tags["dicom.called_ae_title"]);
        Assert.Equal(3, ended.GetMeasurementSnapshot().Count);
        Assert.Equal(measurements[0].Tags["listener"], ended.GetMeasurementSnapshot()[0].Tags["listener"]);
    }

    [Fact]
    public async Task Ae_titles_no_route_matched_do_not_take_the_label_places_of_routed_ones()
    {
        // Two label places (the harness's MaxAeTitles). A scanner's made-up Called AE title, which no route matches, comes
        // first: its titles are counted as other and leave both places to the titles of the routed association after it.
        await using var harness = new HandlerHarness(new Dictionary<string, string?> { ["Routes:any:CalledAeTitle"] = "STORESCP" });
        using var started = harness.Collect("imagingproxy.dicom.associations.started");
        using var ended = harness.Collect("imagingproxy.dicom.associations");
        var request = DicomCaptures.AssociateRequest;
        Assert.True(AeTitleRewriter.TryRewriteCalledAeTitle(request, "SCAN1"));
        var scanner = harness.Connect();
        await scanner.SendAsync(request);
        await scanner.Run.WaitAsync(s_bounded);
        var modality = harness.Connect();
        await modality.SendAsync(DicomCaptures.AssociateRequest);
        await modality.Run.WaitAsync(s_bounded);

        var starts = started.GetMeasurementSnapshot();
        Assert.Equal(("other", "other"), (starts[0].Tags["dicom.calling_ae_title"], starts[0].Tags["dicom.called_ae_title"]));
        Assert.Equal(("ECHOSCU", "STORESCP"), (starts[1].Tags["dicom.calling_ae_title"], starts[1].Tags["dicom.called_ae_title"]));
        var ends = ended.GetMeasurementSnapshot();
        Assert.Equal("other", ends[0].Tags["dicom.called_ae_title"]);
        Assert.Equal("STORESCP", ends[1].Tags["dicom.called_ae_title"]);
    }

    public void Dispose() => _services.Dispose();

    private static byte[] EchoResponsePData(ushort messageId, ushort status)
    {
        var command = new byte[DimseCommandWriter.EchoResponseLength];
        DimseCommandWriter.WriteEchoResponse(command, messageId, status);
        return DimseObserverTests.PData(DimseObserverTests.Pdv(1, 0x03, command));
    }
}
