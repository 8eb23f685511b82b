using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ImagingProxy.Hosting;
using ImagingProxy.Mllp;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace ImagingProxy.Tests.Mllp;

/// <summary>
/// IdleTimeout is off by default (HL7 senders hold a connection for hours), so a sender whose host died without a FIN or
/// RST is found by TCP keep-alive, which the handler turns on for every inbound connection's socket.
/// </summary>
public sealed class MllpKeepAliveTests
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);

    [Fact(Timeout = 30_000)]
    public async Task An_inbound_connection_gets_tcp_keep_alive_so_a_sender_that_died_silently_is_found()
    {
        await using var harness = new MllpHandlerHarness(["tcp://127.0.0.1:1"]);
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(listener.LocalEndPoint!);
        using var accepted = await listener.AcceptAsync();
        Assert.Equal(0, (int)accepted.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive)!);

        // Kestrel's socket connection: frames from the client come through the input pipe, replies go to the socket.
        var input = new Pipe();
        var connection = new DefaultConnectionContext("keepalive-1", new Duplex(input.Reader, new Pipe().Writer), new Duplex(new Pipe().Reader, input.Writer));
        connection.Features.Set<IConnectionSocketFeature>(new SocketFeature(accepted));
        var handler = harness.ConnectionHandler.OnConnectedAsync(connection);

        // A message answered (no node takes it: AR) shows the handler is past its start.
        MllpFrameWriter.Write(input.Writer, MllpHandlerHarness.Message("K1"));
        await input.Writer.FlushAsync();
        var reply = new byte[4096];
        var read = await client.ReceiveAsync(reply.AsMemory()).AsTask().WaitAsync(s_timeout);
        Assert.Contains("MSA|AR|K1", Encoding.ASCII.GetString(reply, 0, read), StringComparison.Ordinal);

        Assert.Equal(1, (int)accepted.GetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive)!);
        Assert.Equal((int)TcpKeepAlive.Idle.TotalSeconds, (int)accepted.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime)!);
        Assert.Equal((int)TcpKeepAlive.Interval.TotalSeconds, (int)accepted.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval)!);
        Assert.Equal(TcpKeepAlive.Probes, (int)accepted.GetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount)!);

        await input.Writer.CompleteAsync();
        await handler.WaitAsync(s_timeout);
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
