using System.Buffers;
using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using System.Text;
using ImagingProxy.Configuration;
using ImagingProxy.Mllp;
using ImagingProxy.Tests.Support;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Mllp;

/// <summary>The connection handler over in-memory pipes: the paths that need no node (bad input, no route, no node).</summary>
public sealed class MllpConnectionHandlerTests : IAsyncLifetime
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    private readonly Pipe _toProxy = new();
    private readonly Pipe _fromProxy = new();
    private readonly ServiceProvider _services;
    private readonly MllpNodePool _pool;
    private readonly Task _handler;
    private readonly ImagingProxy.Hosting.ConnectionDrain _drain;
    private readonly MllpFrameReader _frames = new();

    public MllpConnectionHandlerTests()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ReverseProxy:Clusters:empty:Metadata:Protocol"] = "Mllp",
            ["ReverseProxy:Clusters:empty:Destinations:d1:Address"] = "tcp://127.0.0.1:1",
            ["ImagingProxy:Mllp:MaxFrameSize"] = "512",
            ["ImagingProxy:Mllp:Routes:0:MessageType"] = "ORM^*",
            ["ImagingProxy:Mllp:Routes:0:Cluster"] = "empty",
        }).Build();
        var gate = new ConfigurationGate(config);
        gate.ApplyInitial();
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        _pool = new MllpNodePool(TimeProvider.System);
        var metrics = new MllpProxyMetrics(_services.GetRequiredService<IMeterFactory>(), new ImagingProxy.Telemetry.TagValueLimiter(null, 50));
        var forwarder = new MllpForwarder(_pool, new MllpHandlerHarness.NoHealthUpdates(), metrics, TimeProvider.System, NullLogger<MllpForwarder>.Instance);
        var lifetime = new MllpHandlerHarness.Lifetime();
        _drain = new ImagingProxy.Hosting.ConnectionDrain(lifetime, Microsoft.Extensions.Options.Options.Create(new Microsoft.Extensions.Hosting.HostOptions()), TimeProvider.System, NullLogger<ImagingProxy.Hosting.ConnectionDrain>.Instance);
        var handler = new MllpConnectionHandler(new MllpProxyConfiguration(gate), new FixedProxyState(new ClusterState("empty")), forwarder, _pool, metrics, TimeProvider.System, lifetime, _drain, NullLogger<MllpConnectionHandler>.Instance);
        var connection = new DefaultConnectionContext("test-1", new MllpHandlerHarness.Duplex(_toProxy.Reader, _fromProxy.Writer), new MllpHandlerHarness.Duplex(_fromProxy.Reader, _toProxy.Writer));
        _handler = Task.Run(() => handler.OnConnectedAsync(connection));
    }

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        await _toProxy.Writer.CompleteAsync();
        await _handler.WaitAsync(s_timeout);
        await _pool.DisposeAsync();
        await _services.DisposeAsync();
        _drain.Dispose();
    }

    private static byte[] Message(string controlId, string type = "ORM^O01^ORM_O01", string extraMsh = "")
        => Encoding.ASCII.GetBytes($"MSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000||{type}|{controlId}|P|2.5.1{extraMsh}\rPID|1\r");

    private async Task SendAsync(byte[] before, byte[]? message)
    {
        var writer = _toProxy.Writer;
        writer.Write(before);
        if (message is not null)
        {
            MllpFrameWriter.Write(writer, message);
        }

        await writer.FlushAsync();
    }

    /// <summary>The next reply as text, or null when the handler closed the connection.</summary>
    private async Task<string?> ReplyAsync()
    {
        var reader = _fromProxy.Reader;
        while (true)
        {
            var result = await reader.ReadAsync().AsTask().WaitAsync(s_timeout);
            var buffer = result.Buffer;
            if (_frames.TryReadFrame(ref buffer, out var frame) == MllpReadResult.Frame)
            {
                var text = Encoding.ASCII.GetString(frame);
                reader.AdvanceTo(buffer.Start);
                return text;
            }

            reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return null;
            }
        }
    }

    [Fact]
    public async Task No_route_gets_ar_with_err_200_and_msa2()
    {
        await SendAsync([], Message("M1", "SIU^S12"));

        var reply = await ReplyAsync();

        Assert.Contains("\rMSA|AR|M1|No route for message type SIU\\S\\S12", reply, StringComparison.Ordinal); // ^ escaped as \S\
        Assert.Contains("\rERR|||200^", reply, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cluster_without_nodes_gets_ar_in_original_mode_and_cr_in_enhanced_mode()
    {
        await SendAsync([], Message("M2"));
        var original = await ReplyAsync();
        await SendAsync([], Message("M3", extraMsh: "|||AL|NE"));
        var enhanced = await ReplyAsync();

        Assert.Contains("\rMSA|AR|M2|No healthy node in cluster 'empty'", original, StringComparison.Ordinal);
        Assert.Contains("\rERR|||207^", original, StringComparison.Ordinal);
        Assert.Contains("\rMSA|CR|M3|", enhanced, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Garbage_before_the_frame_is_dropped_and_the_frame_is_answered()
    {
        await SendAsync("\r\nnoise"u8.ToArray(), Message("M4", "SIU^S12"));

        Assert.Contains("\rMSA|AR|M4|", await ReplyAsync(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Oversize_frame_gets_a_nak_and_the_next_frame_is_read()
    {
        var big = Encoding.ASCII.GetBytes($"MSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01|BIG1|P|2.5.1\rOBX|1|TX|||{new string('x', 2000)}\r");
        await SendAsync([], big);
        var oversize = await ReplyAsync();
        await SendAsync([], Message("M5", "SIU^S12"));
        var next = await ReplyAsync();

        Assert.Contains("\rMSA|AR|BIG1|Message larger than the maximum frame size of 512 bytes", oversize, StringComparison.Ordinal);
        Assert.Contains("\rMSA|AR|M5|", next, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Unusable_encoding_characters_get_ar_with_err_102_on_msh10_and_the_next_frame_is_read()
    {
        await SendAsync([], "MSH|^~|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01^ORM_O01|BD1|P|2.5.1\rPID|1\r"u8.ToArray());
        var nak = await ReplyAsync();
        await SendAsync([], Message("M6", "SIU^S12"));
        var next = await ReplyAsync();

        Assert.Contains("\rMSA|AR|BD1|MSH-2 (encoding characters) is not valid; message not forwarded.", nak, StringComparison.Ordinal);
        Assert.Contains("\rERR|||102^", nak, StringComparison.Ordinal);
        Assert.Contains("\rMSA|AR|M6|", next, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("^~")]
    [InlineData("^^\\&")]
    public async Task The_nak_to_unusable_encoding_characters_declares_the_ones_it_is_written_with_and_reads_back(string encodingCharacters)
    {
        // HL7 v2.5 §2.14.9.2: MSH-2 is four (v2.7: five) distinct characters. The NAK is written with MSH-1 and ^~\&, so
        // its MSH-2 must say so: an MSH-2 copied from the message (MSH|^~|) makes the NAK as unreadable as the message.
        await SendAsync([], Encoding.ASCII.GetBytes($"MSH|{encodingCharacters}|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01^ORM_O01|BD2|P|2.5.1\rPID|1\r"));
        var nak = await ReplyAsync();

        Assert.NotNull(nak);
        Assert.StartsWith("MSH|^~\\&|PACS|HOSP|RIS|RAD|", nak, StringComparison.Ordinal);
        Assert.Equal(Hl7ReadStatus.Success, Hl7AckReader.TryRead(Encoding.ASCII.GetBytes(nak), 4096, out var ack));
        Assert.Equal(AcknowledgmentCode.ApplicationReject, ack.Code);
        Assert.Equal("BD2", ack.AcknowledgedControlId.GetString());
    }

    [Fact]
    public async Task Frame_without_msh_closes_the_connection_without_an_answer()
    {
        await SendAsync([], "PID|1||123\r"u8.ToArray());

        await _handler.WaitAsync(s_timeout); // the handler returned: Kestrel then closes the socket
        Assert.False(_fromProxy.Reader.TryRead(out _));
    }
}
