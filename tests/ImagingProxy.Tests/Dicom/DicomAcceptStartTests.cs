using System.Net;
using ImagingProxy.Dicom;
using ImagingProxy.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace ImagingProxy.Tests.Dicom;

public class DicomAcceptStartTests
{
    private static readonly TimeSpan s_bounded = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task An_association_started_at_accept_is_served_before_Kestrel_dispatches_it_and_ends_once()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(destinationPorts: node.Port);
        var ended = 0;
        harness.Handler.AssociationEnded += _ => Interlocked.Increment(ref ended);

        var (client, dispatch) = harness.AcceptAndStart(DicomCaptures.AssociateRequest, "dicom");

        // The node answered and the client has its AC while Kestrel has not called the handler yet.
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);
        Assert.True(node.SawRequest);
        var summary = await ReleaseAsync(harness, client, Task.Run(dispatch));
        Assert.Equal(DicomAssociationEndReason.Released, summary.Reason);
        Assert.Equal(1, ended);
        Assert.Equal([PduType.ReleaseRequest], await node.Closed.WaitAsync(s_bounded));
    }

    [Fact]
    public async Task While_kestrel_limits_concurrent_connections_the_association_waits_for_kestrel()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(destinationPorts: node.Port);
        var limits = new KestrelServerLimits { MaxConcurrentConnections = 10 };
        ListenOptions? options = null;
        new KestrelServerOptions().Listen(IPAddress.Loopback, 104, o => options = o);
        var hook = new DicomAcceptStart(harness.Handler, new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "dicom" }, limits)
            .HookFor(new ProxyListener("dicom", ProxyListener.DicomKind, options!))!;

        var (client, dispatch) = harness.AcceptAndStart(DicomCaptures.AssociateRequest, "dicom", hook);
        var kestrel = Task.Run(dispatch);
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);

        var summary = await ReleaseAsync(harness, client, kestrel);
        Assert.Equal(DicomAssociationEndReason.Released, summary.Reason);
        Assert.False(summary.StartedAtAccept);
    }

    /// <summary>The client releases and closes; Kestrel's call of the handler and the association end (bounded).</summary>
    private static async Task<DicomAssociationSummary> ReleaseAsync(HandlerHarness harness, HandlerHarness.TestClient client, Task kestrel)
    {
        await client.SendAsync(DicomCaptures.ReleaseRequest);
        Assert.Equal(PduType.ReleaseResponse, (await client.ReadPduAsync())!.Value.Header.Type);
        await client.Output.CompleteAsync();
        await kestrel.WaitAsync(s_bounded);
        return await harness.Ended.Task.WaitAsync(s_bounded);
    }
}
