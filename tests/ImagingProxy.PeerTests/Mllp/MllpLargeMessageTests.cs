using System.Text;
using ImagingProxy.Mllp;
using ImagingProxy.Testing;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>
/// Messages larger than Kestrel's read buffer (1 MiB, its pause threshold) on a plain-TCP listener, such as an ORU^R01
/// with an embedded PDF: the handler examines what it has without consuming it until the trailer comes, which lets the
/// transport go on receiving, so the frame is forwarded (or, over MaxFrameSize, answered with AR and ERR 104).
/// </summary>
public sealed class MllpLargeMessageTests() : MllpPeerFixture("mllp-large-")
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(60);

    private static byte[] Report(string controlId, int size)
    {
        var head = Encoding.ASCII.GetString(MllpClient.Message(controlId, "ORU^R01^ORU_R01", body: "PID|1||12345^^^HOSP^MR||DOE^JOHN\rOBX|1|ED|PDF^Report||^application^pdf^Base64^"));
        return Encoding.ASCII.GetBytes(head + new string('A', size - head.Length - 1) + "\r");
    }

    [Fact]
    public async Task A_3_MiB_report_reaches_the_node_and_its_ack_comes_back_with_the_default_MaxFrameSize()
    {
        var node = await NodeAsync("a");
        Proxy = await TestProxy.StartAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["results"] = [node.Address] }, [("*", "results")]));
        using var timeout = new CancellationTokenSource(s_timeout);
        await using var client = await MllpClient.ConnectAsync(Proxy.Port("hl7"), timeout.Token);

        var reply = await client.SendAsync(Report("BIG1", 3 * 1024 * 1024), timeout.Token);

        Assert.NotNull(reply);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, reply.Code);
        Assert.Equal("BIG1", reply.ControlId);
        Assert.Equal(["BIG1"], (await node.ReceivedAsync()).Select(r => r.ControlId));
    }

    [Fact]
    public async Task A_report_over_a_MaxFrameSize_above_1_MiB_gets_AR_with_ERR_104_and_the_next_message_is_served()
    {
        var node = await NodeAsync("a");
        Proxy = await TestProxy.StartAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["results"] = [node.Address] }, [("*", "results")], maxFrameSize: 2 * 1024 * 1024));
        using var timeout = new CancellationTokenSource(s_timeout);
        await using var client = await MllpClient.ConnectAsync(Proxy.Port("hl7"), timeout.Token);

        var tooLarge = await client.SendAsync(Report("BIG2", 3 * 1024 * 1024), timeout.Token);
        var next = await client.SendAsync(Report("OK3", (2 * 1024 * 1024) - 16), timeout.Token);

        Assert.NotNull(tooLarge);
        Assert.Equal(AcknowledgmentCode.ApplicationReject, tooLarge.Code);
        Assert.Equal("BIG2", tooLarge.ControlId);
        Assert.Contains("\rERR|||104^", tooLarge.Text, StringComparison.Ordinal);
        Assert.NotNull(next);
        Assert.Equal(AcknowledgmentCode.ApplicationAccept, next.Code);
        Assert.Equal(["OK3"], (await node.ReceivedAsync()).Select(r => r.ControlId));
    }
}
