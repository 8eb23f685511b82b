using System.Text.RegularExpressions;
using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.PeersTests;

// Real peers: /bin/sh and socat (Debian), as stand-ins for any program a test starts.
public sealed partial class PeerProcessTests
{
    private static readonly TimeSpan s_wait = TimeSpan.FromSeconds(10);

    [Fact(Timeout = 30_000)]
    public async Task Waits_for_an_output_line_and_sees_tcp_nodelay_in_the_environment()
    {
        await using var process = PeerProcess.Start(new PeerStartInfo("/bin/sh") { Arguments = ["-c", "echo \"nodelay=$TCP_NODELAY\"; exec sleep 30"] });

        var line = await process.WaitForLineAsync(NoDelayLine(), s_wait);

        Assert.Equal("nodelay=1", line);
    }

    [Fact(Timeout = 30_000)]
    public async Task Fails_at_once_when_the_program_exits_before_it_is_ready()
    {
        await using var process = PeerProcess.Start(new PeerStartInfo("/bin/sh") { Arguments = ["-c", "echo cannot bind >&2; exit 3"] });

        var error = await Assert.ThrowsAsync<InvalidOperationException>(() => process.WaitForTcpPortAsync(FreePort.Next(), s_wait));

        Assert.Contains("exited with code 3", error.Message, StringComparison.Ordinal);
        Assert.Contains("cannot bind", error.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 30_000)]
    public async Task Kill_ends_the_program_and_its_children()
    {
        var port = FreePort.Next();
        var process = PeerProcess.Start(new PeerStartInfo("/bin/sh") { Arguments = ["-c", $"socat TCP-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork EXEC:cat & wait"] });
        await process.WaitForTcpPortAsync(port, s_wait);

        await process.KillAsync();
        await process.DisposeAsync();

        var restarted = PeerProcess.Start(new PeerStartInfo("socat") { Arguments = [$"TCP-LISTEN:{port},bind=127.0.0.1", "EXEC:cat"] });
        await using (restarted)
        {
            await restarted.WaitForTcpPortAsync(port, s_wait);
        }
    }

    [Fact]
    public void A_missing_program_says_how_to_install_the_peers()
    {
        var error = Assert.Throws<InvalidOperationException>(() => PeerProcess.Start(new PeerStartInfo("no-such-peer-program")));

        Assert.Contains("install-peers.sh", error.Message, StringComparison.Ordinal);
    }

    [GeneratedRegex("^nodelay=")]
    private static partial Regex NoDelayLine();
}
