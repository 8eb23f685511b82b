using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using ImagingProxy.Mllp;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Time.Testing;

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
        using var replies = MllpReplyWriter.For(Connection(new SocketFeature(_server)), TimeProvider.System);
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
        using var replies = MllpReplyWriter.For(Connection(new SocketFeature(_server)), TimeProvider.System);
        _server.Dispose(); // what Kestrel's abort does to the socket (drain deadline, reset)

        MllpFrameWriter.Write(replies.Writer, "MSA|AA|1"u8);
        Assert.False(await replies.SendAsync());
    }

    [Fact]
    public async Task Without_a_socket_a_reply_goes_through_the_output_pipe()
    {
        using var replies = MllpReplyWriter.For(Connection(feature: null), TimeProvider.System);
        Assert.False(replies.IsDirect);

        MllpFrameWriter.Write(replies.Writer, "MSA|AA|1"u8);
        Assert.True(await replies.SendAsync());

        var read = await _output.Reader.ReadAsync().AsTask().WaitAsync(s_timeout);
        Assert.Equal("\vMSA|AA|1\u001c\r"u8.ToArray(), read.Buffer.ToArray());
    }

    [Fact]
    public async Task A_reply_the_client_does_not_read_from_the_socket_ends_after_the_send_timeout_and_aborts_the_connection()
    {
        var time = new FakeTimeProvider();
        var connection = new SocketConnection(_server, new Duplex(new Pipe().Reader, _output.Writer));
        using var replies = MllpReplyWriter.For(connection, time);
        Assert.True(replies.IsDirect);

        // More than the loopback socket buffers take while the client reads nothing.
        MllpFrameWriter.Write(replies.Writer, new byte[32 * 1024 * 1024]);
        var send = replies.SendAsync().AsTask();
        Assert.False(send.IsCompleted);
        time.Advance(MllpReplyWriter.SendTimeout - TimeSpan.FromMilliseconds(1));
        Assert.False(send.IsCompleted);
        time.Advance(TimeSpan.FromMilliseconds(1));

        Assert.False(await send.WaitAsync(s_timeout));
        Assert.True(replies.TimedOut);
        Assert.True(connection.Aborted);
    }

    [Fact]
    public async Task A_reply_the_client_does_not_read_from_the_pipe_ends_after_the_send_timeout_and_aborts_the_connection()
    {
        var time = new FakeTimeProvider();
        var output = new Pipe(new PipeOptions(pauseWriterThreshold: 16, resumeWriterThreshold: 8));
        var connection = new DefaultConnectionContext("reply-2", new Duplex(new Pipe().Reader, output.Writer), new Duplex(output.Reader, new Pipe().Writer));
        var aborted = new TaskCompletionSource();
        using var registration = connection.ConnectionClosed.Register(aborted.SetResult);
        using var replies = MllpReplyWriter.For(connection, time);

        MllpFrameWriter.Write(replies.Writer, "MSA|AA|1|more than the pipe's pause threshold"u8);
        var send = replies.SendAsync().AsTask();
        Assert.False(send.IsCompleted);
        time.Advance(MllpReplyWriter.SendTimeout);

        Assert.False(await send.WaitAsync(s_timeout));
        Assert.True(replies.TimedOut);
        await aborted.Task.WaitAsync(s_timeout);
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

    /// <summary>A plain connection on a socket whose abort closes the socket, as Kestrel's socket transport does.</summary>
    private sealed class SocketConnection : DefaultConnectionContext
    {
        private readonly Socket _socket;

        public SocketConnection(Socket socket, IDuplexPipe transport)
            : base("reply-socket", transport, new Duplex(new Pipe().Reader, new Pipe().Writer))
        {
            _socket = socket;
            Features.Set<IConnectionSocketFeature>(new SocketFeature(socket));
        }

        public bool Aborted { get; private set; }

        public override void Abort(ConnectionAbortedException abortReason)
        {
            Aborted = true;
            _socket.Dispose();
            base.Abort(abortReason);
        }
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
