using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using ImagingProxy.Dicom;
using ImagingProxy.Mllp;
using ImagingProxy.PeerTests.Mllp;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;

namespace ImagingProxy.PeerTests.Operations;

/// <summary>
/// SIGTERM drain of the real host process (issue 6). Needs dcmtk (storescu → storescp with --sleep-after, so the
/// association is certainly open when the signal comes) and python3-hl7 (tests/peers/hl7_node.py with --delay-ms, so
/// an HL7 message is certainly in flight). An association the test holds open keeps the drain going while the Admin
/// endpoint is checked: it must keep answering (liveness, unready, metrics, status) until the process exits.
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
    public async Task Sigterm_lets_open_associations_and_messages_finish_rejects_new_ones_keeps_admin_serving_and_exits_before_the_deadline()
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

        // 3. An association the test holds open: the drain cannot end before the test releases it.
        await using var held = await HeldAssociation.ConnectAsync(dicomPort, cancel.Token);
        Assert.Equal(PduType.AssociateAccept, (await held.RequestAsync("PACS", cancel.Token)).Type);

        // 4. An HL7 message in flight (the node holds its ACK for 2 s).
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

        // While the held association keeps the drain going, the Admin endpoint accepts new connections (as probes and
        // scrapes open them) and answers: unready, alive, metrics, status.
        await AssertAdminServesTheDrainAsync(adminPort, cancel.Token);

        var (rejectType, rejectBody) = await late.RequestAsync("PACS", cancel.Token);
        Assert.Equal(PduType.AssociateReject, rejectType);
        Assert.Equal((byte)AssociateRejectResult.RejectedTransient, rejectBody[1]);

        var ack = await inFlight;
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, ack?.Code);
        Assert.Equal("DRAIN00001", ack?.ControlId);
        Assert.Null(await sender.ReceiveAsync(cancel.Token));

        // Kestrel asks connections to close only once every data listener is closed, so the MLLP close above means
        // the DICOM listener is closed now: a new connection is refused.
        var refused = await Assert.ThrowsAsync<SocketException>(() => ConnectAsync(dicomPort, cancel.Token));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);

        var stored = await store;
        Assert.True(stored.Succeeded, stored.ToString());
        Assert.Equal(sent.Count, scp.ReceivedFiles().Count);

        // The held association is still relayed mid-drain, and the process waits for it.
        Assert.Equal((ushort)0, await held.EchoAsync(cancel.Token));
        Assert.False(host.Process.HasExited, "the host exited while an association was open");
        await AssertAdminServesTheDrainAsync(adminPort, cancel.Token);
        Assert.Equal(PduType.ReleaseResponse, await held.ReleaseAsync(cancel.Token));
        await held.DisposeAsync(); // the requestor closes the connection after A-RELEASE-RP (PS3.8 §7.2)

        Assert.Equal(0, await host.WaitForExitAsync(s_drainTimeout));
        Assert.True(signalled.Elapsed < s_drainTimeout, $"exit took {signalled.Elapsed}");
        Assert.Contains("ended: released", host.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("ended: draining", host.Output, StringComparison.OrdinalIgnoreCase);

        // The Admin endpoint closed last: after every association had ended.
        var output = host.Output;
        var adminClosing = output.IndexOf("closing the Admin endpoint", StringComparison.Ordinal);
        Assert.True(adminClosing > output.LastIndexOf("ended: released", StringComparison.OrdinalIgnoreCase), output);
    }

    private static async Task AssertAdminServesTheDrainAsync(int adminPort, CancellationToken cancellationToken)
    {
        // No pooled connection: each request opens its own, as a kubelet probe does.
        using var admin = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{adminPort}/"),
        };

        using (var ready = await admin.GetAsync("/readyz", cancellationToken))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Equal("draining\n", await ready.Content.ReadAsStringAsync(cancellationToken));
        }

        using (var alive = await admin.GetAsync("/healthz", cancellationToken))
        {
            Assert.Equal(HttpStatusCode.OK, alive.StatusCode);
            Assert.Equal("ok\n", await alive.Content.ReadAsStringAsync(cancellationToken));
        }

        using (var metrics = await admin.GetAsync("/metrics", cancellationToken))
        {
            Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
            var text = await metrics.Content.ReadAsStringAsync(cancellationToken);
            Assert.Contains("imagingproxy_", text, StringComparison.Ordinal);
            Assert.True(ActiveAssociations(text) >= 1, "the held association is not counted in imagingproxy_dicom_associations_active:\n" + text);
        }

        using var status = JsonDocument.Parse(await admin.GetStringAsync("/status", cancellationToken));
        Assert.False(status.RootElement.GetProperty("ready").GetBoolean());
        var listeners = status.RootElement.GetProperty("listeners").EnumerateArray().Select(l => l.GetProperty("name").GetString()).ToList();
        Assert.Contains("dicom", listeners);
        Assert.Contains("Admin", listeners);
    }

    private static double ActiveAssociations(string prometheusText)
        => prometheusText.Split('\n')
            .Where(line => line.StartsWith("imagingproxy_dicom_associations_active{", StringComparison.Ordinal))
            .Sum(line => double.Parse(line[(line.IndexOf("} ", StringComparison.Ordinal) + 2)..].Split(' ')[0], CultureInfo.InvariantCulture));

    private static async Task ConnectAsync(int port, CancellationToken cancellationToken)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
    }
}
