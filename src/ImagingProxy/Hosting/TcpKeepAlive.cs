using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace ImagingProxy.Hosting;

/// <summary>
/// TCP keep-alive on an inbound connection that may stay silent for hours: an HL7 sender between bursts, whose connection
/// has no <c>IdleTimeout</c> by default. Without it a sender whose host died (power lost, cable pulled, a firewall that
/// dropped the flow) sends no FIN or RST, and its connection, with its <c>MaxConnections</c> slot, stayed open for ever.
/// With it the kernel probes a connection idle for <see cref="Idle"/> every <see cref="Interval"/>, and one that answers
/// none of <see cref="Probes"/> fails its pending read (the close is counted as <c>client_aborted</c>): about 7 minutes
/// after the last byte. A live sender answers the probes from its kernel, whatever its application does.
/// </summary>
public static class TcpKeepAlive
{
    /// <summary>Silence before the first probe (Linux's default, 2 h, would hold a dead sender's slot for over 2 h).</summary>
    public static readonly TimeSpan Idle = TimeSpan.FromMinutes(5);

    /// <summary>Time between unanswered probes.</summary>
    public static readonly TimeSpan Interval = TimeSpan.FromSeconds(30);

    /// <summary>Unanswered probes after which the peer is taken for dead.</summary>
    public const int Probes = 4;

    /// <summary>Turns keep-alive on for <paramref name="connection"/>'s socket; nothing when it has none (in-memory transports).</summary>
    public static void Enable(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (connection.Features.Get<IConnectionSocketFeature>()?.Socket is not { } socket)
        {
            return;
        }

        try
        {
            socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, (int)Idle.TotalSeconds);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, (int)Interval.TotalSeconds);
            socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, Probes);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // The client is already gone: its connection ends on the first read.
        }
    }
}
