using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
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
/// Needs dcmtk (echoscu, storescu, storescp). The node that rejects transiently is an in-process acceptor built
/// with PduWriter, because storescp can only reject permanently (<c>--refuse</c>).
/// </summary>
public sealed class DicomProxyFailoverTests
{
    [Fact(Timeout = 60_000)]
    public async Task Association_fails_over_from_a_closed_port_and_a_transient_reject_to_a_healthy_node()
    {
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        using var rejector = new TransientRejector();
        await using var proxy = await TestProxy.StartAsync(
            TestProxy.Config("{" + Cluster("pacs", [("a-closed", FreePort.Next(), null), ("b-transient", rejector.Port, null), ("c-healthy", scp.Port, null)]) + "}",
                DicomProxyHarness.Dicom(Route("pacs", "PACS", "pacs"))),
            builder => builder.Logging.AddFakeLogging());
        using var recorder = Record(proxy);

        var result = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");

        Assert.True(result.Succeeded, result.ToString());
        var summary = Assert.Single(await recorder.WaitAsync(1));
        Assert.Equal("c-healthy", summary.DestinationId);
        Assert.Equal(DicomAssociationEndReason.Released, summary.Reason);
        Assert.Equal(1, rejector.Rejected);

        // Review 20l: the failover line named the transient reject but not its reason.
        var failover = Assert.Single(proxy.Services.GetFakeLogCollector().GetSnapshot(), r => r.Id.Id == 301 && r.Message.Contains("b-transient", StringComparison.Ordinal));
        Assert.True(failover.Message.Contains("A-ASSOCIATE-RJ transient: service-provider (presentation), local-limit-exceeded", StringComparison.Ordinal), failover.Message);
    }

    [Fact(Timeout = 60_000)]
    public async Task When_the_primary_fails_the_association_goes_to_the_backup_node_and_later_ones_too()
    {
        // The primary's port is closed: the association's next attempt goes to the backup (a disaster-recovery PACS),
        // and passive health takes the primary out, so the next association goes straight to the backup.
        await using var dr = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await TestProxy.StartAsync(TestProxy.Config(
            $$"""
            { "pacs": { "Metadata": { "Protocol": "Dicom" }, "HealthCheck": { "Passive": { "Enabled": true, "ReactivationPeriod": "00:05:00" } },
                "Destinations": {
                  "primary": { "Address": "tcp://127.0.0.1:{{FreePort.Next()}}" },
                  "dr": { "Address": "tcp://127.0.0.1:{{dr.Port}}", "Metadata": { "Backup": "true" } } } } }
            """,
            DicomProxyHarness.Dicom(Route("pacs", "PACS", "pacs"))));
        using var recorder = Record(proxy);

        var first = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");
        Assert.True(first.Succeeded, first.ToString());
        var summary = Assert.Single(await recorder.WaitAsync(1));
        Assert.Equal(("dr", 2), (summary.DestinationId, summary.Attempts)); // the primary, then the backup

        await DicomProxyHarness.WaitForHealthAsync(proxy, "pacs", d => d.Health.Passive == Yarp.ReverseProxy.Model.DestinationHealth.Unhealthy, ["primary"], TimeSpan.FromSeconds(10));
        var second = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");
        Assert.True(second.Succeeded, second.ToString());
        Assert.Equal(("dr", 1), ((await recorder.WaitAsync(2))[1].DestinationId, (await recorder.WaitAsync(2))[1].Attempts));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_permanent_reject_from_a_node_is_passed_to_the_client_as_is()
    {
        await using var refusing = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS", ExtraArguments = ["--refuse"] });
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await TestProxy.StartAsync(
            TestProxy.Config("{" + Cluster("pacs", [("a-refusing", refusing.Port, null), ("b-healthy", scp.Port, null)]) + "}", DicomProxyHarness.Dicom(Route("pacs", "PACS", "pacs"))),
            builder => builder.Logging.AddFakeLogging());
        using var recorder = Record(proxy);

        var result = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");

        Assert.False(result.Succeeded, result.ToString());
        Assert.Contains("Rejected Permanent", result.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(DicomAssociationEndReason.Rejected, Assert.Single(await recorder.WaitAsync(1)).Reason);

        // Review 20l: the end line says "rejected" only; the node's reason (storescp --refuse: service-user, no reason) has its line.
        var rejected = Assert.Single(proxy.Services.GetFakeLogCollector().GetSnapshot(), r => r.Id.Id == 309);
        Assert.Contains("destination a-refusing of cluster pacs rejected", rejected.Message, StringComparison.Ordinal);
        Assert.True(rejected.Message.Contains("permanently (service-user, no-reason-given)", StringComparison.Ordinal), rejected.Message);
    }

    [Fact(Timeout = 60_000)]
    public async Task Echoscu_reports_temporary_congestion_when_every_destination_is_down()
    {
        await using var proxy = await StartAsync(
            Cluster("pacs", [("a", FreePort.Next(), null), ("b", FreePort.Next(), null)]),
            Route("pacs", "PACS", "pacs"));

        var result = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");

        Assert.False(result.Succeeded, result.ToString());
        Assert.Contains("Rejected Transient", result.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("Temporary Congestion", result.Output, StringComparison.OrdinalIgnoreCase);
    }

    [Fact(Timeout = 90_000)]
    public async Task A_node_killed_mid_transfer_aborts_storescu_within_seconds_and_the_proxy_keeps_serving()
    {
        using var files = TestDicomFiles.Create();
        var sent = await files.CreateSeriesAsync(30, TestDicomKind.Ct, pixelDataBytes: 4 * 1024 * 1024);
        await using var victim = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var backup = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await StartAsync(
            Cluster("pacs", [("a-victim", victim.Port, null), ("b-backup", backup.Port, null)]),
            Route("pacs", "PACS", "pacs"));
        using var recorder = Record(proxy);

        var store = Dcmtk.StoreAsync(proxy.Port("dicom"), "PACS", sent.Select(f => f.Path));
        using (var firstFile = new CancellationTokenSource(TimeSpan.FromSeconds(30)))
        {
            while (victim.ReceivedFiles().Count == 0)
            {
                await Task.Delay(20, firstFile.Token);
            }
        }

        await victim.KillAsync();
        var result = await store.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.False(result.Succeeded, result.ToString());
        Assert.Equal(DicomAssociationEndReason.NodeClosed, (await recorder.WaitAsync(1))[0].Reason);
        var echo = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");
        Assert.True(echo.Succeeded, echo.ToString());
    }

    [Fact(Timeout = 60_000)]
    public async Task Echo_probe_marks_a_live_storescp_healthy_and_a_closed_port_unhealthy()
    {
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        var clusters = Cluster("pacs", [("live", scp.Port, "PACS"), ("dead", FreePort.Next(), "DEAD")]);
        var at = clusters.IndexOf("\"Metadata\"", StringComparison.Ordinal);
        clusters = clusters.Insert(at, "\"HealthCheck\": { \"Active\": { \"Enabled\": true, \"Interval\": \"00:00:01\", \"Timeout\": \"00:00:02\" } }, ");
        await using var proxy = await StartAsync(clusters, Route("pacs", "PACS", "pacs"));
        await WaitForHealthAsync(
            proxy,
            "pacs",
            d => d.Health.Active == (d.DestinationId == "live" ? DestinationHealth.Healthy : DestinationHealth.Unhealthy),
            ["live", "dead"],
            TimeSpan.FromSeconds(20));
    }

    [Fact(Timeout = 60_000)]
    public async Task A_reload_that_turns_echo_probes_off_puts_both_destinations_back_to_Unknown()
    {
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        var clusters = Cluster("pacs", [("live", scp.Port, "PACS"), ("dead", FreePort.Next(), "DEAD")]);
        var at = clusters.IndexOf("\"Metadata\"", StringComparison.Ordinal);
        string WithProbes(bool enabled) => clusters.Insert(at, $$"""
            "HealthCheck": { "Active": { "Enabled": {{(enabled ? "true" : "false")}}, "Interval": "00:00:01", "Timeout": "00:00:02" } },
            """);
        await using var proxy = await StartAsync(WithProbes(true), Route("pacs", "PACS", "pacs"));
        await WaitForHealthAsync(
            proxy,
            "pacs",
            d => d.Health.Active == (d.DestinationId == "live" ? DestinationHealth.Healthy : DestinationHealth.Unhealthy),
            ["live", "dead"],
            TimeSpan.FromSeconds(20));

        Assert.Empty(await proxy.ReloadAsync(TestProxy.Config("{" + WithProbes(false) + "}", DicomProxyHarness.Dicom(Route("pacs", "PACS", "pacs")))));

        await WaitForHealthAsync(proxy, "pacs", d => d.Health.Active == DestinationHealth.Unknown, ["live", "dead"], TimeSpan.FromSeconds(20));
        Assert.True(proxy.Services.GetRequiredService<IProxyStateLookup>().TryGetCluster("pacs", out var cluster));
        Assert.Equal(2, cluster.DestinationsState.AvailableDestinations.Count);
    }

    /// <summary>Answers every A-ASSOCIATE-RQ with A-ASSOCIATE-RJ rejected-transient (PS3.8 Table 9-21).</summary>
    private sealed class TransientRejector : IDisposable
    {
        private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        private readonly CancellationTokenSource _stop = new(TimeSpan.FromSeconds(60));
        private int _rejected;

        public TransientRejector()
        {
            _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            _listener.Listen(8);
            Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
            _ = AcceptLoopAsync();
        }

        public int Port { get; }

        public int Rejected => Volatile.Read(ref _rejected);

        public void Dispose()
        {
            _stop.Cancel();
            _listener.Dispose();
            _stop.Dispose();
        }

        private async Task AcceptLoopAsync()
        {
            try
            {
                while (true)
                {
                    using var socket = await _listener.AcceptAsync(_stop.Token);
                    socket.NoDelay = true;
                    await using var stream = new NetworkStream(socket, ownsSocket: false);
                    var input = PipeReader.Create(stream);
                    var output = PipeWriter.Create(stream);
                    while (true)
                    {
                        var read = await input.ReadAsync(_stop.Token);
                        var buffer = read.Buffer;
                        var status = PduReader.TryReadPdu(ref buffer, DicomDefaults.AssociationPduLimit, out _, out _);
                        input.AdvanceTo(buffer.Start, buffer.End);
                        if (status != PduReadResult.Incomplete || read.IsCompleted)
                        {
                            break;
                        }
                    }

                    PduWriter.WriteAssociateReject(output, AssociateRejectResult.RejectedTransient, AssociateRejectSource.ServiceProviderPresentation, AssociateRejectReasons.ServiceProviderPresentationLocalLimitExceeded);
                    await output.FlushAsync(_stop.Token);
                    Interlocked.Increment(ref _rejected);
                    await input.CompleteAsync();
                    await output.CompleteAsync();
                }
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException or SocketException or IOException)
            {
            }
        }
    }
}
