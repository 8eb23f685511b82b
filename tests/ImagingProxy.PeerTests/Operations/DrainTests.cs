using System.Diagnostics;
using ImagingProxy.Dicom;
using ImagingProxy.Mllp;
using ImagingProxy.PeerTests.Mllp;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;

namespace ImagingProxy.PeerTests.Operations;

/// <summary>
/// SIGTERM drain of the real host process (issue 6). Needs dcmtk (storescu → storescp with --sleep-after, so the
/// association is certainly open when the signal comes) and python3-hl7 (tests/peers/hl7_node.py with --delay-ms, so
/// an HL7 message is certainly in flight).
/// </summary>
public sealed class DrainTests : IAsyncLifetime
{
    private static readonly TimeSpan s_drainTimeout = TimeSpan.FromSeconds(40);
    private readonly string _directory = Directory.CreateTempSubdirectory("imagingproxy-drain-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    [Fact(Timeout = 180_000)]
    public async Task Sigterm_lets_open_associations_and_messages_finish_rejects_new_ones_and_exits_before_the_deadline()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(150));
        using var files = TestDicomFiles.Create();
        var sent = await files.CreateSeriesAsync(4, cancellationToken: cancel.Token);
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS", Fork = true, ExtraArguments = ["--sleep-after", "1"] });
        await using var node = await Hl7Node.StartAsync(_directory, "ris", "--delay-ms", "2000");

        var config = Path.Combine(_directory, "proxy.json");
        await File.WriteAllTextAsync(config, $$"""
            {
              "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
              "ReverseProxy": { "Clusters": {
                "pacs": { "Metadata": { "Protocol": "Dicom" }, "Destinations": { "pacs1": { "Address": "tcp://127.0.0.1:{{scp.Port}}" } } },
                "ris": { "Metadata": { "Protocol": "Mllp" }, "Destinations": { "ris1": { "Address": "{{node.Address}}" } } } } },
              "ImagingProxy": {
                "DrainTimeout": "00:00:{{(int)s_drainTimeout.TotalSeconds}}",
                "Dicom": { "Listeners": { "dicom": { "Address": "127.0.0.1", "Port": 0 } }, "Routes": { "pacs": { "CalledAeTitle": "PACS", "Cluster": "pacs" } } },
                "Mllp": { "Listeners": { "hl7": { "Address": "127.0.0.1", "Port": 0 } }, "Routes": { "all": { "Cluster": "ris" } } }
              }
            }
            """);
        using var host = HostProcess.Start(["--config", config]);
        var dicomPort = await host.PortAsync("dicom");
        var hl7Port = await host.PortAsync("hl7");
        var adminPort = await host.PortAsync("Admin");
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{adminPort}/") };
        Assert.Equal("ready\n", await admin.GetStringAsync("/readyz", cancel.Token));

        // 1. A storescu association in the middle of its files (storescp sleeps 1 s after each).
        var store = Dcmtk.StoreAsync(dicomPort, "PACS", sent.Select(f => f.Path), cancellationToken: cancel.Token);
        while (scp.ReceivedFiles().Count == 0)
        {
            await Task.Delay(20, cancel.Token);
        }

        // 2. A connection accepted before the signal whose association request comes after it.
        await using var late = await HeldAssociation.ConnectAsync(dicomPort, cancel.Token);

        // 3. An HL7 message in flight (the node holds its ACK for 2 s).
        await using var sender = await MllpClient.ConnectAsync(hl7Port, cancel.Token);
        var inFlight = sender.SendAsync(MllpClient.Message("DRAIN00001"), cancel.Token);
        while ((await node.ReceivedAsync()).Count == 0)
        {
            await Task.Delay(20, cancel.Token);
        }

        Assert.False(store.IsCompleted, "storescu must still be sending when SIGTERM arrives");
        var signalled = Stopwatch.StartNew();
        host.Terminate();
        await host.WaitForOutputAsync("Application is shutting down", TimeSpan.FromSeconds(20));

        var (rejectType, rejectBody) = await late.RequestAsync("PACS", cancel.Token);
        Assert.Equal(PduType.AssociateReject, rejectType);
        Assert.Equal((byte)AssociateRejectResult.RejectedTransient, rejectBody[1]);

        var ack = await inFlight;
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, ack?.Code);
        Assert.Equal("DRAIN00001", ack?.ControlId);
        Assert.Null(await sender.ReceiveAsync(cancel.Token));

        var stored = await store;
        Assert.True(stored.Succeeded, stored.ToString());
        Assert.Equal(sent.Count, scp.ReceivedFiles().Count);

        Assert.Equal(0, await host.WaitForExitAsync(s_drainTimeout));
        Assert.True(signalled.Elapsed < s_drainTimeout, $"exit took {signalled.Elapsed}");
        Assert.Contains("ended: released", host.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("ended: draining", host.Output, StringComparison.OrdinalIgnoreCase);
    }
}
