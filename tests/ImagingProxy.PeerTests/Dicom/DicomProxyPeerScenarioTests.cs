using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using ImagingProxy.Dicom;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;
using static ImagingProxy.PeerTests.Dicom.DicomProxyHarness;

namespace ImagingProxy.PeerTests.Dicom;

/// <summary>
/// Query/retrieve, Called AE rewrite, DICOM TLS and health through the proxy against real peers (each test names
/// its peers); every dcmtk process runs with TCP_NODELAY=1 (<see cref="PeerProcess"/>). Waits are bounded; no sleeps.
/// </summary>
public sealed partial class DicomProxyPeerScenarioTests
{
    /// <summary>Peers: dcmtk dcmqrscp (archive), storescu (fills it directly), findscu, movescu, getscu through the proxy, storescp (move destination).</summary>
    [Fact(Timeout = 120_000)]
    public async Task Findscu_movescu_and_getscu_work_through_the_proxy_against_dcmqrscp()
    {
        using var files = TestDicomFiles.Create();
        var sent = await files.CreateSeriesAsync(3);
        var study = sent[0].StudyInstanceUid;
        await using var destination = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "DEST" });
        await using var archive = await Dcmtk.StartDcmQrScpAsync(new DcmQrScpOptions { AeTitle = "ARCHIVE", MoveDestinations = [destination.Node] });
        var store = await Dcmtk.StoreAsync(archive.Port, archive.AeTitle, sent.Select(f => f.Path));
        Assert.True(store.Succeeded, $"{store}\n--- dcmqrscp ---\n{archive.Process.Output}");
        await using var proxy = await StartAsync(Cluster("qr", [("qr1", archive.Port, null)]), Route("qr", "ARCHIVE", "qr"));
        using var recorder = Record(proxy);
        var port = proxy.Port("dicom");

        var find = await Dcmtk.FindAsync(port, "ARCHIVE", ["QueryRetrieveLevel=STUDY", "StudyInstanceUID", "PatientID"], new ScuOptions { ExtraArguments = ["-v"] });
        var move = await Dcmtk.MoveAsync(port, "ARCHIVE", "DEST", ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"]);
        using var getDirectory = TempDirectory.Create("getscu-");
        var get = await Dcmtk.RunAsync(
            "getscu",
            ["-aec", "ARCHIVE", "-S", "-k", "QueryRetrieveLevel=STUDY", "-k", $"StudyInstanceUID={study}", "-od", getDirectory.Path, "127.0.0.1", Port(port)],
            TimeSpan.FromSeconds(60));

        Assert.True(find.Succeeded, find.ToString());
        Assert.Contains(study, find.Output, StringComparison.Ordinal);
        Assert.True(move.Succeeded, $"{move}\n--- dcmqrscp ---\n{archive.Process.Output}");
        Assert.Equal(3, destination.ReceivedFiles().Count);
        Assert.True(get.Succeeded, $"{get}\n--- dcmqrscp ---\n{archive.Process.Output}");
        Assert.Equal(3, Directory.GetFiles(getDirectory.Path).Length);
        var summaries = await recorder.WaitAsync(3);
        Assert.All(summaries, s => Assert.Equal(DicomAssociationEndReason.Released, s.Reason));
    }

    /// <summary>
    /// Peers: Orthanc (archive, C-MOVE and C-GET SCP on its DICOM port), two storescp move destinations (WS_DIRECT, reached
    /// by Orthanc around the proxy; WS_PROXIED, reached through the proxy's own listener), movescu and getscu through the
    /// proxy. The move through the proxy opens a second association (Orthanc → WS_PROXIED) while the first still waits.
    /// </summary>
    [Fact(Timeout = 120_000)]
    public async Task Movescu_and_getscu_against_orthanc_reach_destinations_around_and_through_the_proxy()
    {
        using var files = TestDicomFiles.Create();
        var sent = await files.CreateSeriesAsync(3);
        var study = sent[0].StudyInstanceUid;
        await using var direct = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "WS_DIRECT" });
        await using var proxied = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "WS_PROXIED" });
        await using var orthanc = await OrthancNode.StartAsync(new OrthancOptions { AeTitle = "ORTHANC", DicomWeb = false, Modalities = [direct.Node] });
        foreach (var file in sent)
        {
            await orthanc.UploadInstanceAsync(file.Path);
        }

        await using var proxy = await StartAsync(
            Cluster("pacs", [("orthanc1", orthanc.DicomPort, null)]) + "," + Cluster("ws", [("ws1", proxied.Port, null)]),
            Route("pacs", "ORTHANC", "pacs") + "," + Route("ws", "WS_PROXIED", "ws"));
        using var recorder = Record(proxy);
        var port = proxy.Port("dicom");

        // WS_PROXIED is known to Orthanc at the proxy's address (a workstation registered behind the proxy).
        using (var modality = await orthanc.Http.PutAsync(
            new Uri("modalities/WS_PROXIED", UriKind.Relative),
            new StringContent($$"""{ "AET": "WS_PROXIED", "Host": "127.0.0.1", "Port": {{port}} }""")))
        {
            Assert.True(modality.IsSuccessStatusCode, $"{(int)modality.StatusCode} {await modality.Content.ReadAsStringAsync()}");
        }

        string[] keys = ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"];
        var moveAround = await Dcmtk.MoveAsync(port, "ORTHANC", "WS_DIRECT", keys);
        var moveThrough = await Dcmtk.MoveAsync(port, "ORTHANC", "WS_PROXIED", keys);
        using var getDirectory = TempDirectory.Create("getscu-");
        var get = await Dcmtk.RunAsync(
            "getscu",
            ["-aec", "ORTHANC", "-S", "-k", keys[0], "-k", keys[1], "-od", getDirectory.Path, "127.0.0.1", Port(port)],
            TimeSpan.FromSeconds(60));

        Assert.True(moveAround.Succeeded, $"{moveAround}\n--- Orthanc ---\n{orthanc.Process.Output}");
        Assert.True(moveThrough.Succeeded, $"{moveThrough}\n--- Orthanc ---\n{orthanc.Process.Output}");
        Assert.True(get.Succeeded, $"{get}\n--- Orthanc ---\n{orthanc.Process.Output}");
        await AssertReceivedAsync(direct, sent);
        await AssertReceivedAsync(proxied, sent);
        Assert.Equal(3, Directory.GetFiles(getDirectory.Path).Length);

        // Four associations: the two moves, the move's sub-association through the proxy, the get; all released.
        var summaries = await recorder.WaitAsync(4);
        Assert.Equal(4, summaries.Count);
        Assert.All(summaries, s => Assert.Equal(DicomAssociationEndReason.Released, s.Reason));
        var subAssociation = Assert.Single(summaries, s => s.ClusterId == "ws");
        Assert.Equal(("ORTHANC", "WS_PROXIED", 3), (subAssociation.CallingAeTitle, subAssociation.CalledAeTitle, subAssociation.CStoreRequests));
        Assert.Equal(3, Assert.Single(summaries, s => s.CallingAeTitle == "GETSCU").CStoreRequests);
    }

    /// <summary>Peers: Orthanc with DicomCheckCalledAet (accepts only its own AE title) and dcmtk echoscu.</summary>
    [Fact(Timeout = 120_000)]
    public async Task Called_ae_rewrite_reaches_a_node_that_only_accepts_its_own_ae_title_and_restores_the_clients_title()
    {
        await using var orthanc = await OrthancNode.StartAsync(new OrthancOptions { AeTitle = "ORTHANC_1", DicomWeb = false, CheckCalledAeTitle = true });
        var direct = await Dcmtk.EchoAsync(orthanc.DicomPort, "PACS");
        Assert.False(direct.Succeeded, $"Orthanc should refuse a foreign Called AE title:\n{direct}");

        await using var proxy = await StartAsync(
            Cluster("pacs", [("orthanc1", orthanc.DicomPort, "ORTHANC_1")], extra: ", \"RewriteCalledAeTitle\": \"true\""),
            Route("pacs", "PACS", "pacs"));
        var proxied = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", new ScuOptions { ExtraArguments = ["-d"] });

        Assert.True(proxied.Succeeded, $"{proxied}\n--- Orthanc ---\n{orthanc.Process.Output}");
        var accept = proxied.Output[proxied.Output.IndexOf("BEGIN A-ASSOCIATE-AC", StringComparison.Ordinal)..];
        Assert.Matches(CalledPacs(), accept);
        Assert.DoesNotContain("ORTHANC_1", accept, StringComparison.Ordinal);
    }

    /// <summary>Peers: dcmtk echoscu with anonymous TLS (<c>+tla -ic</c>) → the proxy's DICOM TLS listener (PEM cert) → storescp.</summary>
    [Fact(Timeout = 60_000)]
    public async Task Echoscu_over_tls_reaches_storescp_through_a_dicom_tls_listener()
    {
        using var certificate = new TestCertificate();
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        var cert = System.Text.Json.JsonSerializer.Serialize(certificate.CertificatePath);
        var key = System.Text.Json.JsonSerializer.Serialize(certificate.KeyPath);
        await using var proxy = await TestProxy.StartAsync(TestProxy.Config(
            "{" + Cluster("pacs", [("pacs1", scp.Port, null)]) + "}",
            $$"""
            { "Dicom": { "Listeners": { "dicomtls": { "Address": "127.0.0.1", "Port": 0, "Tls": { "Path": {{cert}}, "KeyPath": {{key}} } } },
                         "Routes": { {{Route("pacs", "PACS", "pacs")}} } } }
            """), builder => builder.Logging.AddFakeLogging());
        using var recorder = Record(proxy);
        using var ended = new Microsoft.Extensions.Diagnostics.Metrics.Testing.MetricCollector<double>(proxy.Services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), "Microsoft.AspNetCore.Server.Kestrel", "kestrel.connection.duration");

        var tls = await Dcmtk.EchoAsync(proxy.Port("dicomtls"), "PACS", new ScuOptions { ExtraArguments = ["+tla", "-ic"] });
        var plain = await Dcmtk.EchoAsync(proxy.Port("dicomtls"), "PACS", new ScuOptions { Timeout = TimeSpan.FromSeconds(20), ExtraArguments = ["-to", "5", "-ta", "5"] });

        Assert.True(tls.Succeeded, tls.ToString());
        Assert.False(plain.Succeeded, plain.ToString());
        // A TLS association is started by Kestrel's pipeline (the handshake runs in its middleware), not at accept.
        Assert.Contains(await recorder.WaitAsync(1), s => s.Reason == DicomAssociationEndReason.Released && s.CEchoRequests == 1 && !s.StartedAtAccept);

        // The plain echoscu's failed handshake is logged as a warning (event 6); the TLS one is not. Kestrel records a
        // connection's end after the listener's middleware returned.
        await ended.WaitForMeasurementsAsync(2, TimeSpan.FromSeconds(20));
        var warning = Assert.Single(proxy.Services.GetFakeLogCollector().GetSnapshot(), r => r.Category == "ImagingProxy.Hosting" && r.Id.Id == 6);
        Assert.Contains("no TLS ClientHello", warning.Message, StringComparison.Ordinal);
    }

    /// <summary>
    /// Peers: storescp <c>--refuse</c> (rejects every association) and an in-process TCP listener that accepts but
    /// never reads; each is marked Unhealthy by the C-ECHO probe within interval × threshold + timeout.
    /// </summary>
    [Fact(Timeout = 60_000)]
    public async Task Echo_probe_marks_a_refusing_node_and_a_hanging_node_unhealthy_in_time()
    {
        await using var refusing = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS", ExtraArguments = ["--refuse"] });
        using var hanging = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        hanging.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        hanging.Listen(16);
        var hangingPort = ((IPEndPoint)hanging.LocalEndPoint!).Port;
        var interval = TimeSpan.FromSeconds(1);
        var timeout = TimeSpan.FromSeconds(2);
        const int threshold = 2;
        var clusters = Cluster(
            "pacs",
            [("refusing", refusing.Port, "PACS"), ("hanging", hangingPort, "HANG")],
            extra: $", \"ConsecutiveFailuresHealthPolicy.Threshold\": \"{threshold}\"");
        var at = clusters.IndexOf("\"Metadata\"", StringComparison.Ordinal);
        clusters = clusters.Insert(at, "\"HealthCheck\": { \"Active\": { \"Enabled\": true, \"Interval\": \"00:00:01\", \"Timeout\": \"00:00:02\" } }, ");
        var started = Stopwatch.StartNew();
        await using var proxy = await StartAsync(clusters, Route("pacs", "PACS", "pacs"));

        await WaitForHealthAsync(proxy, "pacs", d => d.Health.Active == DestinationHealth.Unhealthy, ["refusing", "hanging"], TimeSpan.FromSeconds(20));

        // The first probe result is taken as is (Unknown → Unhealthy); the bound is the one the issue states, plus start-up slack.
        var bound = (interval * threshold) + timeout + TimeSpan.FromSeconds(2);
        Assert.True(started.Elapsed < bound, $"took {started.Elapsed}, bound {bound}");
    }

    /// <summary>Peers: dcmtk echoscu and storescp; the first destination is a closed port.</summary>
    [Fact(Timeout = 60_000)]
    public async Task A_destination_whose_connect_fails_is_marked_passively_unhealthy_and_skipped_next_time()
    {
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        var clusters = Cluster("pacs", [("a-closed", FreePort.Next(), null), ("b-live", scp.Port, null)]);
        var at = clusters.IndexOf("\"Metadata\"", StringComparison.Ordinal);
        clusters = clusters.Insert(at, "\"HealthCheck\": { \"Passive\": { \"Enabled\": true, \"ReactivationPeriod\": \"00:05:00\" } }, ");
        await using var proxy = await StartAsync(clusters, Route("pacs", "PACS", "pacs"));
        using var recorder = Record(proxy);

        var first = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");
        var second = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");

        Assert.True(first.Succeeded, first.ToString());
        Assert.True(second.Succeeded, second.ToString());
        var summaries = await recorder.WaitAsync(2);
        Assert.Equal(2, summaries[0].Attempts);
        Assert.Equal(1, summaries[1].Attempts);
        Assert.All(summaries, s => Assert.Equal("b-live", s.DestinationId));
        Assert.True(proxy.Services.GetRequiredService<IProxyStateLookup>().TryGetCluster("pacs", out var cluster));
        Assert.Equal(DestinationHealth.Unhealthy, cluster.Destinations["a-closed"].Health.Passive);
    }

    [GeneratedRegex(@"Called Application Name:\s+PACS\b")]
    private static partial Regex CalledPacs();
}
