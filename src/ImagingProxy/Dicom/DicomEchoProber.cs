using System.Net;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Dicom;

/// <summary>
/// The C-ECHO health probe of DICOM clusters: a real Verification association (A-ASSOCIATE-RQ, C-ECHO-RQ, expect
/// C-ECHO-RSP status 0x0000, A-RELEASE) against the destination's own AE title (metadata <c>AeTitle</c>, else
/// <c>ANY-SCP</c>), calling as <c>ImagingProxy:Dicom:ProbeCallingAeTitle</c>, over TLS to a <c>tls://</c> destination
/// (<see cref="NodeTls"/>: a node whose certificate is not accepted is unhealthy). Healthy only on success.
/// </summary>
public sealed class DicomEchoProber(DicomProxySettings settings, NodeTls nodeTls, TimeProvider time) : IDestinationProber
{
    /// <summary>Called AE title when the destination names none.</summary>
    public const string DefaultCalledAeTitle = "ANY-SCP";

    public ClusterProtocol Protocol => ClusterProtocol.Dicom;

    public async Task<ProbeResult> ProbeAsync(ClusterState cluster, DestinationState destination, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(destination);
        var config = destination.Model.Config;
        if (!TcpAddress.TryParse(config.Address, out var address))
        {
            return ProbeResult.Failure($"bad address '{config.Address}'");
        }

        EndPoint endPoint = IPAddress.TryParse(address.Host, out var ip) ? new IPEndPoint(ip, address.Port) : new DnsEndPoint(address.Host, address.Port);
        var calledAeTitle = config.Metadata?.GetValueOrDefault(MetadataKeys.AeTitle) ?? DefaultCalledAeTitle;
        var callingAeTitle = DicomProxySettings.ProbeCallingAeTitle(settings.Current);
        var options = new DicomEchoOptions { TimeProvider = time };
        if (address.Tls)
        {
            ArgumentNullException.ThrowIfNull(cluster);
            try
            {
                var (clusterId, destinationId) = (cluster.ClusterId, destination.DestinationId);
                options = options with
                {
                    Tls = nodeTls.ClientOptions(cluster.Model.Config, config, address),
                    TlsEstablished = certificate => nodeTls.Observe(clusterId, destinationId, certificate),
                };
            }
            catch (InvalidOperationException ex)
            {
                return ProbeResult.Failure($"TLS settings: {ex.Message}");
            }
        }

        var result = await DicomEchoClient.EchoAsync(endPoint, calledAeTitle, callingAeTitle, options, cancellationToken);

        // The monitor ends a probe through the token at the probe's Timeout (or when its loop stops, when the result is
        // not used): said as the HTTP probe says it.
        return result.IsSuccess ? ProbeResult.Success(result.Detail)
            : result.Outcome == EchoOutcome.Canceled ? ProbeResult.Failure("timeout: the C-ECHO association was not answered in time")
            : ProbeResult.Failure(result.ToString());
    }
}
