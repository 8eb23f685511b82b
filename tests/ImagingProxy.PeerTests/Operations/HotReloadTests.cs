using ImagingProxy.Dicom;
using ImagingProxy.Mllp;
using ImagingProxy.PeerTests.Mllp;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;
using static ImagingProxy.PeerTests.Dicom.DicomProxyHarness;

namespace ImagingProxy.PeerTests.Operations;

/// <summary>
/// Hot reload with traffic open (issue 6). Needs dcmtk storescp (two DICOM nodes) and python3-hl7 (tests/peers/hl7_node.py,
/// two HL7 nodes), all on loopback.
/// </summary>
public sealed class HotReloadTests : IAsyncLifetime
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);
    private readonly string _directory = Directory.CreateTempSubdirectory("imagingproxy-reload-").FullName;

    public Task InitializeAsync() => Task.CompletedTask;

    public Task DisposeAsync()
    {
        Directory.Delete(_directory, recursive: true);
        return Task.CompletedTask;
    }

    private static string DicomConfig(params (string Id, int Port)[] destinations)
        => TestProxy.Config("{" + Cluster("pacs", destinations.Select(d => (d.Id, d.Port, (string?)null))) + "}", ImagingProxy.PeerTests.Dicom.DicomProxyHarness.Dicom(Route("pacs", "PACS", "pacs")));

    private static async Task WaitForDestinationsAsync(TestProxy proxy, string cluster, params string[] expected)
    {
        var state = proxy.Services.GetRequiredService<IProxyStateLookup>();
        using var timeout = new CancellationTokenSource(s_timeout);
        while (!(state.TryGetCluster(cluster, out var found) && found.Destinations.Keys.Order().SequenceEqual(expected.Order())))
        {
            await Task.Delay(20, timeout.Token);
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task An_open_association_survives_reloads_and_new_associations_follow_the_new_destinations()
    {
        using var cancel = new CancellationTokenSource(s_timeout * 3);
        await using var nodeA = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS", Fork = true });
        await using var nodeB = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "PACS", Fork = true });
        await using var proxy = await TestProxy.StartAsync(DicomConfig(("a", nodeA.Port)));
        using var recorder = Record(proxy);

        await using var held = await HeldAssociation.ConnectAsync(proxy.Port("dicom"), cancel.Token);
        Assert.Equal(PduType.AssociateAccept, (await held.RequestAsync("PACS", cancel.Token)).Type);
        Assert.Equal((ushort)0, await held.EchoAsync(cancel.Token));

        // An invalid edit is rejected whole: the open association and new ones keep the old configuration.
        var invalid = DicomConfig(("a", nodeA.Port)).Replace("\"Cluster\": \"pacs\"", "\"Cluster\": \"gone\"", StringComparison.Ordinal);
        Assert.Contains("ImagingProxy:Dicom:Routes:pacs:Cluster: unknown cluster 'gone'.", await proxy.ReloadAsync(invalid));
        Assert.Equal((ushort)0, await held.EchoAsync(cancel.Token));
        Assert.True((await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", cancellationToken: cancel.Token)).Succeeded);

        // Destination a is removed, b added: the open association (on a) goes on; new ones go to b.
        Assert.Empty(await proxy.ReloadAsync(DicomConfig(("b", nodeB.Port))));
        await WaitForDestinationsAsync(proxy, "pacs", "b");
        Assert.Equal((ushort)0, await held.EchoAsync(cancel.Token));
        Assert.True((await Dcmtk.EchoAsync(proxy.Port("dicom"), "PACS", cancellationToken: cancel.Token)).Succeeded);
        Assert.Equal(PduType.ReleaseResponse, await held.ReleaseAsync(cancel.Token));
        await held.DisposeAsync(); // PS3.8 §9.1.6: after A-RELEASE-RP the requestor closes the connection

        var ended = await recorder.WaitAsync(3);
        Assert.All(ended, e => Assert.Equal(DicomAssociationEndReason.Released, e.Reason));
        Assert.Equal(["a", "a", "b"], ended.Select(e => e.DestinationId ?? "").Order().ToArray());
        var heldSummary = Assert.Single(ended, e => e.CEchoRequests == 3);
        Assert.Equal("a", heldSummary.DestinationId);
    }

    [Fact(Timeout = 120_000)]
    public async Task An_open_mllp_connection_survives_a_reload_and_its_next_message_follows_the_new_route()
    {
        using var cancel = new CancellationTokenSource(s_timeout * 3);
        await using var first = await Hl7Node.StartAsync(_directory, "first");
        await using var second = await Hl7Node.StartAsync(_directory, "second");
        string Config(string cluster) => MllpProxyConfig.Create(
            new Dictionary<string, string[]> { ["one"] = [first.Address], ["two"] = [second.Address] },
            [("*", cluster)]);
        await using var proxy = await TestProxy.StartAsync(Config("one"));
        await using var client = await MllpClient.ConnectAsync(proxy.Port("hl7"), cancel.Token);

        var before = await client.SendAsync(MllpClient.Message("RELOAD0001"), cancel.Token);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, before?.Code);

        Assert.Empty(await proxy.ReloadAsync(Config("two")));
        var after = await client.SendAsync(MllpClient.Message("RELOAD0002"), cancel.Token);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, after?.Code);
        Assert.Equal("RELOAD0002", after?.ControlId);

        Assert.Equal(["RELOAD0001"], (await first.ReceivedAsync()).Select(m => m.ControlId));
        Assert.Equal(["RELOAD0002"], (await second.ReceivedAsync()).Select(m => m.ControlId));
    }

    [Fact(Timeout = 120_000)]
    public async Task An_open_mllp_connection_follows_a_reload_that_moves_its_destination_to_another_address()
    {
        using var cancel = new CancellationTokenSource(s_timeout * 3);
        await using var first = await Hl7Node.StartAsync(_directory, "first");
        await using var second = await Hl7Node.StartAsync(_directory, "second");
        string Config(string address) => MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [address] }, [("*", "orders")]);
        await using var proxy = await TestProxy.StartAsync(Config(first.Address));
        await using var client = await MllpClient.ConnectAsync(proxy.Port("hl7"), cancel.Token);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, (await client.SendAsync(MllpClient.Message("MOVE0001"), cancel.Token))?.Code);

        // Destination orders-node1 keeps its id and gets the second node's address.
        Assert.Empty(await proxy.ReloadAsync(Config(second.Address)));
        Assert.True(proxy.Services.GetRequiredService<IProxyStateLookup>().TryGetCluster("orders", out var cluster));
        Assert.Equal(second.Address, cluster.Destinations["orders-node1"].Model.Config.Address); // YARP applied it before ReloadAsync returned

        var after = await client.SendAsync(MllpClient.Message("MOVE0002"), cancel.Token);

        Assert.Equal(AcknowledgmentCode.ApplicationAccept, after?.Code);
        Assert.Equal("MOVE0002", after?.ControlId);
        Assert.Equal(["MOVE0001"], (await first.ReceivedAsync()).Select(m => m.ControlId));
        Assert.Equal(["MOVE0002"], (await second.ReceivedAsync()).Select(m => m.ControlId));
    }
}
