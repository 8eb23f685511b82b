using System.Net;
using System.Net.Sockets;

namespace ImagingProxy.Testing;

/// <summary>
/// A loopback port that refuses connections for as long as this object lives: its socket is bound and never listens, so
/// a connection attempt gets a reset, and no other test or process can take the port meanwhile (one that was merely free
/// a moment ago can be taken by a listener of a test running in parallel).
/// </summary>
public sealed class ClosedPort : IDisposable
{
    private readonly Socket _socket = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);

    public ClosedPort()
    {
        _socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        Port = ((IPEndPoint)_socket.LocalEndPoint!).Port;
    }

    public int Port { get; }

    public void Dispose() => _socket.Dispose();
}
