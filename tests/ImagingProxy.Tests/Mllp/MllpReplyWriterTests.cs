using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using ImagingProxy.Mllp;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace ImagingProxy.Tests.Mllp;

/// <summary>Replies straight to a plain TCP client's socket (Kestrel's socket transport), else through the output pipe.</summary>
public sealed class MllpReplyWriterTests : IAsyncLifetime
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly Pipe _output = new();
    private Socket _client = null!;
    private Socket _server = null!;

    public async Task InitializeAsync()
    {
        _listener.Start();
        _client = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        var accept = _listener.AcceptSocketAsync();
        await _client.ConnectAsync((IPEndPoint)_listener.LocalEndpoint);
        _server = await accept.WaitAsync(s_timeout);
    }

    public Task DisposeAsync()
    {
        _client.Dispose();
        _server.Dispose();
        _listener.Stop();
        return Task.CompletedTask;
    }

    [Fact]
    public async Task A_reply_goes_to_the_socket_of_a_plain_connection_and_not_to_the_pipe()
    {
        var replies = MllpReplyWriter.For(Connection(new SocketFeature(_server)));
        Assert.True(replies.IsDirect);

        MllpFrameWriter.Write(replies.Writer, "MSA|AA|1"u8);
        Assert.True(await replies.SendAsync());
        MllpFrameWriter.Write(replies.Writer, "MSA|AA|2"u8);
        Assert.True(await replies.SendAsync());

        var expected = "\vMSA|AA|1\u001c\r\vMSA|AA|2\u001c\r"u8.ToArray();
        var got = new byte[expected.Length];
        for (var filled = 0; filled < got.Length;)
        {
            var n = await _client.ReceiveAsync(got.AsMemory(filled)).AsTask().WaitAsync(s_timeout);
            Assert.NotEqual(0, n);
            filled += n;
        }

        Assert.Equal(expected, got);
        Assert.False(_output.Reader.TryRead(out _));
    }

    [Fact]
    public async Task A_connection_kestrel_aborted_makes_the_send_report_the_client_gone()
    {
        var replies = MllpReplyWriter.For(Connection(new SocketFeature(_server)));
        _server.Dispose(); // what Kestrel's abort does to the socket (drain deadline, reset)

        MllpFrameWriter.Write(replies.Writer, "MSA|AA|1"u8);
        Assert.False(await replies.SendAsync());
    }

    [Fact]
    public async Task Without_a_socket_a_reply_goes_through_the_output_pipe()
    {
        var replies = MllpReplyWriter.For(Connection(feature: null));
        Assert.False(replies.IsDirect);

        MllpFrameWriter.Write(replies.Writer, "MSA|AA|1"u8);
        Assert.True(await replies.SendAsync());

        var read = await _output.Reader.ReadAsync().AsTask().WaitAsync(s_timeout);
        Assert.Equal("\vMSA|AA|1\u001c\r"u8.ToArray(), read.Buffer.ToArray());
    }

    private DefaultConnectionContext Connection(IConnectionSocketFeature? feature)
    {
        var connection = new DefaultConnectionContext("reply-1", new Duplex(new Pipe().Reader, _output.Writer), new Duplex(_output.Reader, new Pipe().Writer));
        if (feature is not null)
        {
            connection.Features.Set(feature);
        }

        return connection;
    }

    private sealed class SocketFeature(Socket socket) : IConnectionSocketFeature
    {
        public Socket Socket { get; } = socket;
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
