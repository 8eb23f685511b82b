using System.Buffers;
using System.Net.Sockets;
using System.Text;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Mllp;

/// <summary>
/// Active health for MLLP clusters: <c>Connect</c> (TCP connect and close: the default, since a receiver processes every
/// message it gets) or <c>Message</c> (send the configured probe message; healthy when MSA-1 is AA/CA, or AE/CE too when
/// configured). Results land in the same destination state as every other cluster's (yarp-notes.md §5).
/// </summary>
internal sealed class MllpProber : IDestinationProber
{
    public ClusterProtocol Protocol => ClusterProtocol.Mllp;

    public async Task<ProbeResult> ProbeAsync(ClusterState cluster, DestinationState destination, CancellationToken cancellationToken)
    {
        var metadata = cluster.Model.Config.Metadata;
        var address = destination.Model.Config.Address;
        if (!string.Equals(metadata?.GetValueOrDefault(MllpProbeKeys.Kind), "Message", StringComparison.OrdinalIgnoreCase))
        {
            return await TcpConnectProber.ConnectAsync(address, cancellationToken);
        }

        if (metadata?.GetValueOrDefault(MllpProbeKeys.Message) is not { Length: > 0 } text)
        {
            return ProbeResult.Failure($"metadata '{MllpProbeKeys.Message}' is required for a Message probe");
        }

        var acceptError = bool.TryParse(metadata.GetValueOrDefault(MllpProbeKeys.AcceptError), out var accept) && accept;
        return await SendProbeAsync(address, ToSegments(text), acceptError, cancellationToken);
    }

    internal static byte[] ToSegments(string text)
        => Encoding.UTF8.GetBytes(text.Replace("\r\n", "\r", StringComparison.Ordinal).Replace('\n', '\r'));

    private static async Task<ProbeResult> SendProbeAsync(string address, byte[] message, bool acceptError, CancellationToken cancellationToken)
    {
        if (!TcpAddress.TryParse(address, out var target))
        {
            return ProbeResult.Failure($"bad address '{address}'");
        }

        var socket = target.NewSocket();
        try
        {
            await socket.ConnectAsync(target.Host, target.Port, cancellationToken);
        }
        catch (SocketException ex)
        {
            socket.Dispose();
            return ProbeResult.Failure($"connect failed: {ex.SocketErrorCode}");
        }
        catch
        {
            socket.Dispose();
            throw;
        }

        await using var node = new MllpNodeConnection(address, socket, ProxyDefaults.MaxFrameSize);
        var reply = new ArrayBufferWriter<byte>();
        try
        {
            if (!await node.SendAsync(new ReadOnlySequence<byte>(message), cancellationToken) || !await node.ReceiveAsync(reply, cancellationToken))
            {
                return ProbeResult.Failure("connection closed before an ACK");
            }
        }
        catch (Exception ex) when (ex is IOException or SocketException or Microsoft.AspNetCore.Connections.ConnectionResetException)
        {
            return ProbeResult.Failure($"{ex.GetType().Name}: {ex.Message}");
        }

        var status = Hl7AckReader.TryRead(reply.WrittenMemory, MllpConstants.DefaultMaxAckScanLength, out var ack);
        if (status != Hl7ReadStatus.Success)
        {
            return ProbeResult.Failure($"unreadable ACK: {status}");
        }

        var healthy = ack.IsAccept || (acceptError && ack.Code is AcknowledgmentCode.ApplicationError or AcknowledgmentCode.CommitError);
        var detail = $"MSA-1 {Encoding.ASCII.GetString(Hl7AckWriter.GetCodeBytes(ack.Code))}";
        return healthy ? ProbeResult.Success(detail) : ProbeResult.Failure(detail);
    }
}
