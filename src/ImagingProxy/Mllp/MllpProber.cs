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
/// message it gets) or <c>Message</c> (send the configured probe message; healthy when MSA-1 is AA/CA, or AE/CE too when
/// configured). Results land in the same destination state as every other cluster's (yarp-notes.md §5).
/// </summary>
internal sealed class MllpProber(NodeTls? nodeTls = null) : IDestinationProber
{
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
        return await ExchangeAsync(node, ToSegments(text), acceptError, cancellationToken);
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

    private static async Task<ProbeResult> ExchangeAsync(MllpNodeConnection node, byte[] message, bool acceptError, CancellationToken cancellationToken)
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
        return healthy ? ProbeResult.Success(detail) : ProbeResult.Failure(detail);
    }
}
