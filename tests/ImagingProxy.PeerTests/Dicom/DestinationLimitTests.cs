using System.Text.Json;
using ImagingProxy.Dicom;
using ImagingProxy.PeerTests.Operations;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;
using static ImagingProxy.PeerTests.Dicom.DicomProxyHarness;

namespace ImagingProxy.PeerTests.Dicom;

/// <summary>
/// Destination metadata <c>MaxConcurrent</c> (a PACS licensed for so many associations) against two real storescp
/// nodes and dcmtk's echoscu: a full node is passed over, a full cluster answers A-ASSOCIATE-RJ. Needs dcmtk.
/// </summary>
public sealed class DestinationLimitTests
{
    [Fact(Timeout = 120_000)]
    public async Task A_node_at_its_MaxConcurrent_is_passed_over_and_a_full_cluster_rejects_the_association()
    {
        await using var scpA = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var scpB = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS" });
        await using var proxy = await TestProxy.StartAsync(TestProxy.Config(
            $$"""
            { "pacs": { "LoadBalancingPolicy": "FirstAlphabetical", "Metadata": { "Protocol": "Dicom" }, "Destinations": {
                "a": { "Address": "tcp://127.0.0.1:{{scpA.Port}}", "Metadata": { "MaxConcurrent": "1" } },
                "b": { "Address": "tcp://127.0.0.1:{{scpB.Port}}", "Metadata": { "MaxConcurrent": "1" } } } } }
            """,
            DicomProxyHarness.Dicom(Route("pacs", "PACS", "pacs"))));
        using var recorder = Record(proxy);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(60));

        // a (first alphabetically) holds one association: the next goes to b.
        await using var second = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancel.Token);
        var first = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancel.Token);
        try
        {
            Assert.Equal(PduType.AssociateAccept, (await first.RequestAsync("PACS", cancel.Token)).Type);
            var toB = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", cancellationToken: cancel.Token);
            Assert.True(toB.Succeeded, toB.ToString());
            Assert.Equal("b", (await recorder.WaitAsync(1))[0].DestinationId);

            // Both full: refused in the protocol, before any node is asked.
            Assert.Equal(PduType.AssociateAccept, (await second.RequestAsync("PACS", cancel.Token)).Type);
            var refused = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", cancellationToken: cancel.Token);
            Assert.False(refused.Succeeded);
            Assert.Contains("Association Rejected", refused.Output, StringComparison.OrdinalIgnoreCase);
            Assert.Equal(DicomAssociationEndReason.NoDestination, (await recorder.WaitAsync(2))[1].Reason);

            using var admin = new HttpClient { BaseAddress = proxy.Url("Admin") };
            using var status = JsonDocument.Parse(await admin.GetStringAsync("/status", cancel.Token));
            foreach (var destination in status.RootElement.GetProperty("clusters")[0].GetProperty("destinations").EnumerateArray())
            {
                Assert.Equal(1, destination.GetProperty("maxConcurrent").GetInt32());
                Assert.Equal(1, destination.GetProperty("activeRequests").GetInt32());
            }

            // a's association ends: a takes associations again.
            Assert.Equal(PduType.ReleaseResponse, await first.ReleaseAsync(cancel.Token));
        }
        finally
        {
            await first.DisposeAsync();
        }

        var released = (await recorder.WaitAsync(3))[2];
        Assert.Equal(("a", DicomAssociationEndReason.Released), (released.DestinationId, released.Reason));

        // b still holds the second association: the next one can only go to a.
        var again = await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", cancellationToken: cancel.Token);
        Assert.True(again.Succeeded, again.ToString());
        Assert.Equal("a", (await recorder.WaitAsync(4))[3].DestinationId);
    }
}
