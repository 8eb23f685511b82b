using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.PeersTests;

// Real peers: dcmtk echoscu, against nothing and against dcmtk storescp.
public sealed class DcmtkEchoTests
{
    [Fact(Timeout = 30_000)]
    public async Task Echoscu_against_a_closed_port_fails_with_a_non_zero_exit_code()
    {
        var closedPort = FreePort.Next();

        var result = await Dcmtk.EchoAsync(closedPort, "NOBODY", new ScuOptions { Timeout = TimeSpan.FromSeconds(20) });

        Assert.NotEqual(0, result.ExitCode);
        Assert.Contains("Association Request Failed", result.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task Echoscu_against_storescp_succeeds()
    {
        await using var scp = await Dcmtk.StartStoreScpAsync();

        var result = await Dcmtk.EchoAsync(scp.Port, scp.AeTitle, new ScuOptions { CallingAeTitle = "ECHOER" });

        Assert.True(result.Succeeded, result.ToString());
    }
}
