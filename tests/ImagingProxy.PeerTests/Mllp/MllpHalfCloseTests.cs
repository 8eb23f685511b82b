using System.Buffers;
using System.Diagnostics.Metrics;
using ImagingProxy.Mllp;
using ImagingProxy.Telemetry;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>
/// A sender that closes its sending side (FIN) right after its frames, as <c>nc</c> or socat do, and goes on reading:
/// on Kestrel's real transport (which signals ConnectionClosed on the FIN) each whole frame still reaches a python3-hl7
/// node and its ACK comes back; a frame cut short by the FIN is logged and counted as <c>incomplete_frame</c>.
/// </summary>
public sealed class MllpHalfCloseTests() : MllpPeerFixture("mllp-halfclose-")
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Frames_sent_with_the_fin_are_forwarded_and_each_ack_reaches_the_half_closed_sender()
    {
        var node = await NodeAsync("a");
        Proxy = await TestProxy.StartAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [node.Address] }, [("*", "orders")]));
        using var closed = new MetricCollector<long>(Proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.hl7.connections.closed");
        using var timeout = new CancellationTokenSource(s_timeout);
        await using var client = await MllpClient.ConnectAsync(Proxy.Port("hl7"), timeout.Token);

        await client.SendAndHalfCloseAsync(Frames(MllpClient.Message("FIN1"), MllpClient.Message("FIN2")), timeout.Token);
        var first = await client.ReceiveAsync(timeout.Token);
        var second = await client.ReceiveAsync(timeout.Token);

        Assert.Equal(("FIN1", AcknowledgmentCode.ApplicationAccept), (first?.ControlId, first?.Code));
        Assert.Equal(("FIN2", AcknowledgmentCode.ApplicationAccept), (second?.ControlId, second?.Code));
        Assert.Null(await client.ReceiveAsync(timeout.Token)); // then the proxy closes
        Assert.Equal(["FIN1", "FIN2"], (await node.ReceivedAsync()).Select(r => r.ControlId));
        await closed.WaitForMeasurementsAsync(1, s_timeout);
        Assert.Equal("client_closed", closed.GetMeasurementSnapshot().Single().Tags["reason"]);
    }

    [Fact]
    public async Task A_frame_cut_short_by_the_fin_is_counted_as_incomplete_after_the_whole_one_before_it_is_answered()
    {
        var node = await NodeAsync("a");
        Proxy = await TestProxy.StartAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [node.Address] }, [("*", "orders")]));
        using var rejected = new MetricCollector<long>(Proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.hl7.frames.rejected");
        using var timeout = new CancellationTokenSource(s_timeout);
        await using var client = await MllpClient.ConnectAsync(Proxy.Port("hl7"), timeout.Token);
        var cut = Frames(MllpClient.Message("FIN4"))[..40];

        byte[] bytes = [.. Frames(MllpClient.Message("FIN3")), .. cut];
        await client.SendAndHalfCloseAsync(bytes, timeout.Token);
        var reply = await client.ReceiveAsync(timeout.Token);

        Assert.Equal(("FIN3", AcknowledgmentCode.ApplicationAccept), (reply?.ControlId, reply?.Code));
        Assert.Null(await client.ReceiveAsync(timeout.Token));
        Assert.Equal(["FIN3"], (await node.ReceivedAsync()).Select(r => r.ControlId));
        await rejected.WaitForMeasurementsAsync(1, s_timeout);
        Assert.Equal("incomplete_frame", rejected.GetMeasurementSnapshot().Single().Tags["reason"]);
    }

    private static byte[] Frames(params byte[][] messages)
    {
        var frames = new ArrayBufferWriter<byte>();
        foreach (var message in messages)
        {
            MllpFrameWriter.Write(frames, message);
        }

        return frames.WrittenSpan.ToArray();
    }
}
