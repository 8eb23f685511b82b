using System.Net;
using System.Net.Sockets;
using ImagingProxy.Configuration;
using ImagingProxy.Dicom;

namespace ImagingProxy.Tests.Dicom;

public class DicomNodeConnectionTests
{
    private static readonly TimeSpan s_bounded = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task ShutdownReceive_ends_a_pending_receive_with_0_and_sending_still_works()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        var address = new TcpAddress("127.0.0.1", ((IPEndPoint)listener.LocalEndPoint!).Port);
        var socket = address.NewSocket();
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, address.Port));
        using var peer = await listener.AcceptAsync();
        await using var node = new DicomNodeConnection(socket);

        var pending = node.ReceiveAsync(new byte[16], CancellationToken.None).AsTask();
        Assert.False(pending.IsCompleted);
        node.ShutdownReceive();

        // The relay stops this way instead of cancelling (no OperationCanceledException per association).
        Assert.Equal(0, await pending.WaitAsync(s_bounded));
        await node.SendAsync(new byte[] { 7, 0, 0, 0, 0, 4, 0, 0, 2, 0 }, CancellationToken.None);
        var received = new byte[10];
        Assert.Equal(10, await peer.ReceiveAsync(received, SocketFlags.None).WaitAsync(s_bounded));
        Assert.Equal((byte)PduType.Abort, received[0]);
    }

    [Theory]
    [InlineData("127.0.0.1", AddressFamily.InterNetwork, false)]
    [InlineData("::1", AddressFamily.InterNetworkV6, false)]
    [InlineData("localhost", AddressFamily.InterNetworkV6, true)]
    public void A_node_socket_has_NoDelay_and_the_family_of_an_ip_literal(string host, AddressFamily family, bool dualMode)
    {
        using var socket = new TcpAddress(host, 104).NewSocket();

        Assert.True(socket.NoDelay);
        Assert.Equal(family, socket.AddressFamily);
        Assert.Equal(dualMode, socket.DualMode);
    }
}
