using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using ImagingProxy.Dicom;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;
using static ImagingProxy.PeerTests.Dicom.DicomProxyHarness;

namespace ImagingProxy.PeerTests.Dicom;

/// <summary>
/// Destination metadata <c>Drain</c> (maintenance of one PACS node) against two real storescp nodes: new associations
/// go to the other node while an association the drained node already carries runs to its end. Needs dcmtk.
/// </summary>
public sealed class DestinationDrainTests
{
    private static string Config(int portA, int portB, bool drainA) => TestProxy.Config(
        $$"""
        { "pacs": { "LoadBalancingPolicy": "FirstAlphabetical", "Metadata": { "Protocol": "Dicom" }, "Destinations": {
            "a": { "Address": "tcp://127.0.0.1:{{portA}}", "Metadata": { "Drain": "{{(drainA ? "true" : "false")}}" } },
            "b": { "Address": "tcp://127.0.0.1:{{portB}}" } } } }
        """,
        DicomProxyHarness.Dicom(Route("pacs", "PACS", "pacs")));

    [Fact(Timeout = 120_000)]
    public async Task A_drained_node_takes_no_new_association_and_finishes_the_one_it_has()
    {
        await using var scpA = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var scpB = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await TestProxy.StartAsync(Config(scpA.Port, scpB.Port, drainA: false));
        using var recorder = Record(proxy);

        // An association set up on a (first alphabetically) and held open after its A-ASSOCIATE-AC.
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, proxy.Port("dicom")));
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var held = new HeldAfterFirstFlush(PipeWriter.Create(stream));
        var heldEcho = DicomEchoClient.EchoAsync(new DuplexPipe(PipeReader.Create(stream), held), "PACS", "HELD", CancellationToken.None).AsTask();
        await held.Associated.WaitAsync(TimeSpan.FromSeconds(30));

        Assert.Empty(await proxy.ReloadAsync(Config(scpA.Port, scpB.Port, drainA: true)));
        for (var i = 0; i < 3; i++)
        {
            var echo = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");
            Assert.True(echo.Succeeded, echo.ToString());
        }

        var whileDrained = await recorder.WaitAsync(3);
        Assert.All(whileDrained, s => Assert.Equal("b", s.DestinationId));
        using var admin = new HttpClient { BaseAddress = proxy.Url("Admin") };
        using (var status = JsonDocument.Parse(await admin.GetStringAsync("/status")))
        {
            var a = status.RootElement.GetProperty("clusters")[0].GetProperty("destinations")[0];
            Assert.Equal("a", a.GetProperty("id").GetString());
            Assert.True(a.GetProperty("draining").GetBoolean());
            Assert.False(a.GetProperty("available").GetBoolean());
        }

        // The held association on the drained node completes its C-ECHO and release.
        held.Release();
        var result = await heldEcho.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(EchoOutcome.Success, result.Outcome);
        socket.Shutdown(SocketShutdown.Both); // the requestor closes after A-RELEASE-RP (PS3.8 Sta13)
        var finished = (await recorder.WaitAsync(4))[3];
        Assert.Equal(("a", DicomAssociationEndReason.Released), (finished.DestinationId, finished.Reason));

        // Back in rotation: the next association goes to a again.
        Assert.Empty(await proxy.ReloadAsync(Config(scpA.Port, scpB.Port, drainA: false)));
        var again = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS");
        Assert.True(again.Succeeded, again.ToString());
        Assert.Equal("a", (await recorder.WaitAsync(5))[4].DestinationId);
    }

    /// <summary>Passes the first flush (the A-ASSOCIATE-RQ); holds the second (the C-ECHO-RQ, sent after the AC) until released.</summary>
    private sealed class HeldAfterFirstFlush(PipeWriter inner) : PipeWriter
    {
        private readonly TaskCompletionSource _associated = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private int _flushes;

        /// <summary>Completes when the client got the A-ASSOCIATE-AC and is about to send its C-ECHO-RQ.</summary>
        public Task Associated => _associated.Task;

        public void Release() => _released.TrySetResult();

        public override async ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
        {
            if (++_flushes == 2)
            {
                _associated.TrySetResult();
                await _released.Task.WaitAsync(cancellationToken);
            }

            return await inner.FlushAsync(cancellationToken);
        }

        public override void Advance(int bytes) => inner.Advance(bytes);

        public override Memory<byte> GetMemory(int sizeHint = 0) => inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => inner.GetSpan(sizeHint);

        public override void CancelPendingFlush() => inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);
    }

    /// <summary>A duplex pipe of a reader and a writer.</summary>
    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
