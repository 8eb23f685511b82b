using System.Net;
using System.Net.Sockets;

namespace ImagingProxy.PeerTests.Peers;

/// <summary>
/// A loopback TCP port that was free a moment ago, for peers that cannot bind port 0 themselves
/// (storescp, dcmqrscp, Orthanc). Another process may take it before the peer binds: callers start
/// the peer, and when it exits because the port is taken they ask for another one (see <see cref="PortRetry"/>).
/// </summary>
public static class FreePort
{
    public static int Next()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
