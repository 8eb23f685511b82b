using System.Net.Sockets;
using ImagingProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Health;

/// <summary>
/// The MLLP <c>Connect</c> probe (the default, because a real HL7 receiver processes every message it gets):
/// a TCP connect to the destination, then an orderly close.
/// </summary>
internal sealed class TcpConnectProber : IDestinationProber
{
    public ClusterProtocol Protocol => ClusterProtocol.Mllp;

    public static async Task<ProbeResult> ConnectAsync(string address, CancellationToken cancellationToken)
    {
        if (!TcpAddress.TryParse(address, out var target))
        {
            return ProbeResult.Failure($"bad address '{address}'");
        }

        using var socket = target.NewSocket();
        try
        {
            await socket.ConnectAsync(target.Host, target.Port, cancellationToken);
            socket.Shutdown(SocketShutdown.Both);
            return ProbeResult.Success("connected");
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return ProbeResult.Failure("connect timeout");
        }
        catch (SocketException ex)
        {
            return ProbeResult.Failure($"connect failed: {ex.SocketErrorCode}");
        }
    }

    public Task<ProbeResult> ProbeAsync(ClusterState cluster, DestinationState destination, CancellationToken cancellationToken)
        => ConnectAsync(destination.Model.Config.Address, cancellationToken);
}
