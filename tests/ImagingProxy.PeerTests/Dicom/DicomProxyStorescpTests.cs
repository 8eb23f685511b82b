using ImagingProxy.Dicom;
using ImagingProxy.PeerTests.Operations;
using ImagingProxy.PeerTests.Peers;
using Microsoft.Extensions.DependencyInjection;
using static ImagingProxy.PeerTests.Dicom.DicomProxyHarness;

namespace ImagingProxy.PeerTests.Dicom;

/// <summary>Needs dcmtk (echoscu, storescu, storescp) as real peers on both sides of the proxy; all with TCP_NODELAY=1.</summary>
public sealed class DicomProxyStorescpTests
{
    [Fact(Timeout = 60_000)]
    public async Task Echoscu_reaches_storescp_through_the_proxy()
    {
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await StartAsync(Cluster("pacs", [("pacs1", scp.Port, null)]), Route("pacs", "PACS", "pacs"));
        using var recorder = Record(proxy);

        var result = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");

        Assert.True(result.Succeeded, $"{result}\n--- storescp ---\n{scp.Process.Output}");
        var summary = Assert.Single(await recorder.WaitAsync(1));
        Assert.Equal(DicomAssociationEndReason.Released, summary.Reason);
        Assert.Equal("pacs1", summary.DestinationId);
        Assert.Equal(1, summary.CEchoRequests);
        Assert.True(summary.BytesFromClient > 0 && summary.BytesFromNode > 0);

        // Inline scheduling (the default): a plain-TCP association is served from the thread that accepted it.
        Assert.True(summary.StartedAtAccept);
    }

    [Fact(Timeout = 60_000)]
    public async Task Echoscu_over_the_listeners_max_associations_is_rejected_transient_and_a_reload_raising_the_limit_lets_it_through()
    {
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        var clusters = Cluster("pacs", [("pacs1", scp.Port, null)]);
        var routes = Route("pacs", "PACS", "pacs");
        await using var proxy = await StartAsync(clusters, routes, maxAssociations: 1);
        using var recorder = Record(proxy);
        var handler = proxy.Services.GetRequiredService<DicomConnectionHandler>();

        // A client that connected and holds the listener's only slot (it has not sent its RQ yet).
        using var holder = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp) { NoDelay = true };
        await holder.ConnectAsync(System.Net.IPAddress.Loopback, proxy.Port("dicom"));
        var rejected = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", new ScuOptions { ExtraArguments = ["-v"] });

        Assert.False(rejected.Succeeded, rejected.ToString());
        Assert.Contains("Rejected Transient", rejected.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("Local Limit Exceeded", rejected.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(DicomAssociationEndReason.ListenerLimit, Assert.Single(await recorder.WaitAsync(1)).Reason);
        using (var admin = new HttpClient { BaseAddress = proxy.Url("Admin") })
        {
            using var status = System.Text.Json.JsonDocument.Parse(await admin.GetStringAsync("/status"));
            var listener = status.RootElement.GetProperty("listeners").EnumerateArray().Single(l => l.GetProperty("name").GetString() == "dicom");
            Assert.Equal(1, listener.GetProperty("openAssociations").GetInt32());
            Assert.Equal(1, listener.GetProperty("maxAssociations").GetInt32());
        }

        // A reload raising the limit applies to the next association, while the holder still holds its slot.
        Assert.Empty(await proxy.ReloadAsync(ImagingProxy.Testing.TestProxy.Config("{" + clusters + "}", DicomProxyHarness.Dicom(routes, maxAssociations: 2))));
        var accepted = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");
        Assert.True(accepted.Succeeded, $"{accepted}\n--- storescp ---\n{scp.Process.Output}");
        Assert.Equal(DicomAssociationEndReason.Released, (await recorder.WaitAsync(2))[1].Reason);

        holder.Close();
        Assert.Equal(DicomAssociationEndReason.ClientClosed, (await recorder.WaitAsync(3))[2].Reason);
        Assert.Equal(0, handler.OpenOn("dicom"));
    }

    [Fact(Timeout = 90_000)]
    public async Task Storescu_files_arrive_byte_identical_at_storescp_through_the_proxy()
    {
        using var files = TestDicomFiles.Create();
        var sent = await files.CreateSeriesAsync(5);
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS", MaxPdu = 131072 });
        await using var proxy = await StartAsync(Cluster("pacs", [("pacs1", scp.Port, null)]), Route("any", "*", "pacs"));
        using var recorder = Record(proxy);
        using var bytes = new Microsoft.Extensions.Diagnostics.Metrics.Testing.MetricCollector<long>(
            proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), DicomProxyMetrics.MeterName, "imagingproxy.dicom.bytes");

        var result = await Dcmtk.StoreAsync(proxy.Port("dicom"), "PACS", sent.Select(f => f.Path));

        Assert.True(result.Succeeded, $"{result}\n--- storescp ---\n{scp.Process.Output}");
        await AssertReceivedAsync(scp, sent);
        var summary = Assert.Single(await recorder.WaitAsync(1));
        Assert.Equal(DicomAssociationEndReason.Released, summary.Reason);
        Assert.Equal(5, summary.CStoreRequests);

        // The bytes counter adds up to what was relayed, reported in steps of 1 MiB and the rest at the end (not per chunk).
        var toNode = bytes.GetMeasurementSnapshot().Where(m => (string?)m.Tags["direction"] == "client_to_node").ToList();
        var toClient = bytes.GetMeasurementSnapshot().Where(m => (string?)m.Tags["direction"] == "node_to_client").ToList();
        Assert.True(summary.BytesFromClient > 5 * TestDicomFiles.CtPixelDataBytes, $"{summary.BytesFromClient} bytes from the client");
        Assert.Equal(summary.BytesFromClient, toNode.Sum(m => m.Value));
        Assert.Equal(summary.BytesFromNode, toClient.Sum(m => m.Value));
        Assert.InRange(toNode.Count, 2, (summary.BytesFromClient / (1024 * 1024)) + 1);
        Assert.Single(toClient);
    }

    [Fact(Timeout = 90_000)]
    public async Task With_early_connect_storescu_files_arrive_byte_identical_and_each_association_uses_its_early_connection()
    {
        using var files = TestDicomFiles.Create();
        var sent = await files.CreateSeriesAsync(3);
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await StartAsync(Cluster("pacs", [("pacs1", scp.Port, null)]), Route("any", "*", "pacs"), earlyConnect: true);
        using var recorder = Record(proxy);
        using var early = new Microsoft.Extensions.Diagnostics.Metrics.Testing.MetricCollector<long>(
            proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), DicomProxyMetrics.MeterName, "imagingproxy.dicom.early_connects");

        var store = await Dcmtk.StoreAsync(proxy.Port("dicom"), "PACS", sent.Select(f => f.Path));
        var echo = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");

        Assert.True(store.Succeeded, $"{store}\n--- storescp ---\n{scp.Process.Output}");
        Assert.True(echo.Succeeded, $"{echo}\n--- storescp ---\n{scp.Process.Output}");
        await AssertReceivedAsync(scp, sent);
        var summaries = await recorder.WaitAsync(2);
        Assert.All(summaries, s => Assert.Equal(DicomAssociationEndReason.Released, s.Reason));
        Assert.All(summaries, s => Assert.Equal(1, s.Attempts));
        await early.WaitForMeasurementsAsync(2).WaitAsync(TimeSpan.FromSeconds(10));
        Assert.All(early.GetMeasurementSnapshot(), m => Assert.Equal("used", m.Tags["outcome"]));
    }

    [Fact(Timeout = 90_000)]
    public async Task Two_storescu_clients_at_once_are_both_relayed()
    {
        using var files = TestDicomFiles.Create();
        var first = await files.CreateSeriesAsync(3);
        var second = await files.CreateSeriesAsync(3);
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS", Fork = true });
        await using var proxy = await StartAsync(Cluster("pacs", [("pacs1", scp.Port, null)]), Route("pacs", "PACS", "pacs"));

        var results = await Task.WhenAll(
            Dcmtk.StoreAsync(proxy.Port("dicom"), "PACS", first.Select(f => f.Path)),
            Dcmtk.StoreAsync(proxy.Port("dicom"), "PACS", second.Select(f => f.Path)));

        Assert.All(results, r => Assert.True(r.Succeeded, r.ToString()));
        await AssertReceivedAsync(scp, [.. first, .. second]);
    }

    [Fact(Timeout = 60_000)]
    public async Task Associations_are_routed_by_called_ae_title_across_two_clusters()
    {
        using var files = TestDicomFiles.Create();
        var forA = await files.CreateAsync();
        var forB = await files.CreateAsync();
        await using var scpA = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS_A" });
        await using var scpB = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS_B" });
        await using var proxy = await StartAsync(
            Cluster("a", [("a1", scpA.Port, null)]) + "," + Cluster("b", [("b1", scpB.Port, null)]),
            Route("a", "PACS_A", "a") + "," + Route("b", "PACS_B", "b"));

        var resultA = await Dcmtk.StoreAsync(proxy.Port("dicom"), "PACS_A", [forA.Path]);
        var resultB = await Dcmtk.StoreAsync(proxy.Port("dicom"), "PACS_B", [forB.Path]);

        Assert.True(resultA.Succeeded, resultA.ToString());
        Assert.True(resultB.Succeeded, resultB.ToString());
        Assert.EndsWith(forA.SopInstanceUid, Assert.Single(scpA.ReceivedFiles()), StringComparison.Ordinal);
        Assert.EndsWith(forB.SopInstanceUid, Assert.Single(scpB.ReceivedFiles()), StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_route_whose_configured_ae_titles_have_spaces_around_them_still_matches_echoscu()
    {
        // Leading and trailing spaces of an AE title are not significant (PS3.5 VR AE); the configuration validates them.
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await StartAsync(
            Cluster("pacs", [("pacs1", scp.Port, null)]),
            """ "pacs": { "CalledAeTitle": " PACS ", "Cluster": "pacs", "CallingAeTitles": [ "CT1 " ] } """);
        using var recorder = Record(proxy);

        var result = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", new ScuOptions { CallingAeTitle = "CT1" });

        Assert.True(result.Succeeded, $"{result}\n--- storescp ---\n{scp.Process.Output}");
        Assert.Equal(DicomAssociationEndReason.Released, Assert.Single(await recorder.WaitAsync(1)).Reason);
    }

    [Fact(Timeout = 60_000)]
    public async Task An_rq_whose_ae_titles_are_nul_padded_is_routed_and_storescp_accepts_it()
    {
        // Some older modalities pad AE titles with NULs, not spaces; storescp (dcmtk) accepts them, so the proxy does too.
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await StartAsync(Cluster("pacs", [("pacs1", scp.Port, null)]),
            """ "pacs": { "CalledAeTitle": "PACS", "Cluster": "pacs", "CallingAeTitles": [ "HELDSCU" ] } """);
        using var recorder = Record(proxy);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(30));

        await using (var association = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancel.Token))
        {
            Assert.Equal(PduType.AssociateAccept, (await association.RequestNulPaddedAsync("PACS", cancel.Token)).Type);
            Assert.Equal(0, await association.EchoAsync(cancel.Token));
            Assert.Equal(PduType.ReleaseResponse, await association.ReleaseAsync(cancel.Token));
        }

        var summary = Assert.Single(await recorder.WaitAsync(1));
        Assert.Equal(("pacs1", DicomAssociationEndReason.Released), (summary.DestinationId, summary.Reason));
    }

    [Fact(Timeout = 60_000)]
    public async Task Echoscu_reports_the_reject_for_an_unknown_called_ae_title()
    {
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await StartAsync(Cluster("pacs", [("pacs1", scp.Port, null)]), Route("pacs", "PACS", "pacs"));
        using var recorder = Record(proxy);

        var result = await Dcmtk.EchoAsync(proxy.Port("dicom"), "NO-SUCH-NODE");

        Assert.False(result.Succeeded, result.ToString());
        Assert.Contains("Rejected Permanent", result.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("Called AE Title Not Recognized", result.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(DicomAssociationEndReason.NoRoute, Assert.Single(await recorder.WaitAsync(1)).Reason);
    }

    [Fact(Timeout = 60_000)]
    public async Task Echoscu_with_a_backslash_in_its_calling_ae_title_is_rejected_as_calling_ae_title_not_recognized()
    {
        // echoscu sends -aet as given; a backslash is not allowed in the AE VR (PS3.5 §6.2).
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await StartAsync(Cluster("pacs", [("pacs1", scp.Port, null)]), Route("pacs", "PACS", "pacs"));
        using var recorder = Record(proxy);

        var result = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", new ScuOptions { CallingAeTitle = "CT\\1" });

        Assert.False(result.Succeeded, result.ToString());
        Assert.Contains("Rejected Permanent", result.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("Calling AE Title Not Recognized", result.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(DicomAssociationEndReason.NoRoute, Assert.Single(await recorder.WaitAsync(1)).Reason);
    }
}
