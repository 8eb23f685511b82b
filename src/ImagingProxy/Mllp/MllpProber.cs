using System.Buffers;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Mllp;

/// <summary>
/// Active health for MLLP clusters: <c>Connect</c> (TCP connect and close: the default, since a receiver processes every
/// message it gets) or <c>Message</c> (send the configured probe message with a control id of its own, MSH-10, so that a
/// receiver that dedupes on MSH-10 does not answer the second probe as a duplicate; healthy when MSA-1 is AA/CA, or
/// AE/CE too when configured, and MSA-2 is that control id). Results land in the same destination state as every other
/// cluster's (yarp-notes.md §5).
/// </summary>
internal sealed class MllpProber(NodeTls? nodeTls = null) : IDestinationProber
{
    private static long s_sequence;
    private readonly NodeTls _nodeTls = nodeTls ?? new NodeTls();

    public ClusterProtocol Protocol => ClusterProtocol.Mllp;

    public async Task<ProbeResult> ProbeAsync(ClusterState cluster, DestinationState destination, CancellationToken cancellationToken)
    {
        var metadata = cluster.Model.Config.Metadata;
        var address = destination.Model.Config.Address;
        var isMessage = string.Equals(metadata?.GetValueOrDefault(MllpProbeKeys.Kind), "Message", StringComparison.OrdinalIgnoreCase);
        if (TcpAddress.TryParse(address, out var target) && target.Tls)
        {
            // A TLS node's Connect probe completes the handshake: a certificate it would be refused for makes it unhealthy.
            SslClientAuthenticationOptions tls;
            try
            {
                tls = _nodeTls.ClientOptions(cluster.Model.Config, destination.Model.Config, target);
            }
            catch (InvalidOperationException ex)
            {
                return ProbeResult.Failure($"TLS settings: {ex.Message}");
            }

            if (!isMessage)
            {
                var opened = await OpenAsync(address, target, tls, cancellationToken);
                if (opened.Node is null)
                {
                    return opened.Failure;
                }

                _nodeTls.Observe(cluster.ClusterId, destination.DestinationId, opened.Node.RemoteCertificate);
                await opened.Node.DisposeAsync();
                return ProbeResult.Success("TLS session opened");
            }

            return await SendProbeAsync(cluster, address, target, tls, cancellationToken);
        }

        if (!isMessage)
        {
            return await TcpConnectProber.ConnectAsync(address, cancellationToken);
        }

        return await SendProbeAsync(cluster, address, target, tls: null, cancellationToken);
    }

    private static async Task<ProbeResult> SendProbeAsync(ClusterState cluster, string address, TcpAddress target, SslClientAuthenticationOptions? tls, CancellationToken cancellationToken)
    {
        var metadata = cluster.Model.Config.Metadata;
        if (metadata?.GetValueOrDefault(MllpProbeKeys.Message) is not { Length: > 0 } text)
        {
            return ProbeResult.Failure($"metadata '{MllpProbeKeys.Message}' is required for a Message probe");
        }

        var acceptError = bool.TryParse(metadata.GetValueOrDefault(MllpProbeKeys.AcceptError), out var accept) && accept;
        if (target.Host is null)
        {
            return ProbeResult.Failure($"bad address '{address}'");
        }

        var opened = await OpenAsync(address, target, tls, cancellationToken);
        if (opened.Node is null)
        {
            return opened.Failure;
        }

        await using var node = opened.Node;
        var controlId = NextControlId();
        return await ExchangeAsync(node, WithControlId(ToSegments(text), controlId), controlId, acceptError, cancellationToken);
    }

    /// <summary>
    /// A control id no other probe of this process had, and none of another run is likely to have had: <c>P</c> and 16
    /// hex digits (the time in milliseconds and a sequence number), within MSH-10's 20 characters (HL7 v2.3-v2.5).
    /// </summary>
    internal static byte[] NextControlId()
    {
        var value = ((ulong)DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() << 12) | ((ulong)Interlocked.Increment(ref s_sequence) & 0xFFF);
        return Encoding.ASCII.GetBytes("P" + value.ToString("X16", System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>
    /// <paramref name="message"/> (segments separated by CR, starting with MSH: validated) with its MSH-10 replaced by
    /// <paramref name="controlId"/>. MSH-1 is the field separator after "MSH": MSH-10 follows the ninth separator from it.
    /// </summary>
    internal static byte[] WithControlId(byte[] message, byte[] controlId)
    {
        var segmentEnd = message.AsSpan().IndexOf((byte)'\r');
        var header = segmentEnd < 0 ? message.AsSpan() : message.AsSpan(0, segmentEnd);
        if (header.Length < 4)
        {
            return message;
        }

        var separator = header[3];
        var start = -1;
        for (int i = 3, count = 0; i < header.Length; i++)
        {
            if (header[i] == separator && ++count == 9)
            {
                start = i + 1;
                break;
            }
        }

        if (start < 0)
        {
            return message;
        }

        var length = header[start..].IndexOf(separator);
        var end = length < 0 ? header.Length : start + length;
        return [.. message.AsSpan(0, start), .. controlId, .. message.AsSpan(end)];
    }

    /// <summary>A connection to the node (with its TLS session for a <c>tls://</c> one), or why there is none.</summary>
    private static async Task<(MllpNodeConnection? Node, ProbeResult Failure)> OpenAsync(string address, TcpAddress target, SslClientAuthenticationOptions? tls, CancellationToken cancellationToken)
    {
        try
        {
            // The probe's own timeout (the caller's token) bounds the connect; this one only keeps the signature honest.
            return (await MllpNodeConnection.ConnectAsync(address, target, tls, ProxyDefaults.MaxFrameSize, Timeout.InfiniteTimeSpan, cancellationToken), default);
        }
        catch (SocketException ex)
        {
            return (null, ProbeResult.Failure($"connect failed: {ex.SocketErrorCode}"));
        }
        catch (Exception ex) when (ex is System.Security.Authentication.AuthenticationException or IOException)
        {
            return (null, ProbeResult.Failure($"TLS handshake with {address} failed: {ex.Message}"));
        }
    }

    internal static byte[] ToSegments(string text)
        => Encoding.UTF8.GetBytes(text.Replace("\r\n", "\r", StringComparison.Ordinal).Replace('\n', '\r'));

    private static async Task<ProbeResult> ExchangeAsync(MllpNodeConnection node, byte[] message, byte[] controlId, bool acceptError, CancellationToken cancellationToken)
    {
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
        if (!ack.AcknowledgedControlId.ValueEquals(controlId))
        {
            // An ACK for another message: the node would answer live messages with the wrong MSA-2 too.
            return ProbeResult.Failure($"{detail}, MSA-2 '{ack.AcknowledgedControlId.GetString()}' is not the probe's control id {Encoding.ASCII.GetString(controlId)}");
        }

        return healthy ? ProbeResult.Success(detail) : ProbeResult.Failure(detail);
    }
}
