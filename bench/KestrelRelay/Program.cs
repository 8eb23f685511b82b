using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;

// The same transport settings as ImagingProxy's DICOM and MLLP listeners (ImagingProxyApp, ProxyTransportFactory):
// socket completions and pipe continuations run inline, receives do not wait for data first, TCP_NODELAY both ways,
// idle thread-pool workers do not spin (KestrelRelay.csproj).
// Like HAProxy, the node connection is opened as soon as the client's is accepted.
if (args.Length != 2)
{
    Console.Error.WriteLine("usage: KestrelRelay LISTEN_PORT NODE_PORT");
    return 2;
}

Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
var listenPort = int.Parse(args[0], CultureInfo.InvariantCulture);
var node = new IPEndPoint(IPAddress.Loopback, int.Parse(args[1], CultureInfo.InvariantCulture));
var builder = WebApplication.CreateSlimBuilder();
builder.Logging.ClearProviders();
builder.WebHost.UseSockets(sockets =>
{
    sockets.UnsafePreferInlineScheduling = true;
    sockets.WaitForDataBeforeAllocatingBuffer = false;
    sockets.NoDelay = true;
});
builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, listenPort, listen => listen.UseConnectionHandler<Relay>()));
builder.Services.AddSingleton(new NodeAddress(node));
await builder.Build().RunAsync();
return 0;

internal sealed record NodeAddress(IPEndPoint EndPoint);

internal sealed class Relay(NodeAddress node) : ConnectionHandler
{
    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(node.EndPoint);
        }
        catch (SocketException)
        {
            return;
        }

        var toNode = ToNodeAsync(connection.Transport.Input, socket);
        var toClient = ToClientAsync(socket, connection.Transport.Output);
        await Task.WhenAll(toNode, toClient);
    }

    // Client to node; the client's FIN becomes a FIN to the node.
    private static async Task ToNodeAsync(PipeReader input, Socket socket)
    {
        try
        {
            while (true)
            {
                var read = await input.ReadAsync();
                foreach (var segment in read.Buffer)
                {
                    await socket.SendAsync(segment, SocketFlags.None);
                }

                input.AdvanceTo(read.Buffer.End);
                if (read.IsCompleted || read.IsCanceled)
                {
                    break;
                }
            }

            socket.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or IOException or ConnectionResetException or ObjectDisposedException)
        {
        }
    }

    // Node to client, received straight into the client's output pipe; the node's close ends the client's connection.
    private static async Task ToClientAsync(Socket socket, PipeWriter output)
    {
        try
        {
            while (true)
            {
                var memory = output.GetMemory(16 * 1024);
                var received = await socket.ReceiveAsync(memory, SocketFlags.None);
                if (received == 0)
                {
                    break;
                }

                output.Advance(received);
                var flushed = await output.FlushAsync();
                if (flushed.IsCompleted)
                {
                    break;
                }
            }
        }
        catch (Exception ex) when (ex is SocketException or IOException or ObjectDisposedException)
        {
        }

        await output.CompleteAsync();
    }
}
