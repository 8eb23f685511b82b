using ImagingProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Health;

/// <summary>Speaks one protocol to one destination to tell whether it serves (HTTP request, DICOM C-ECHO, MLLP).</summary>
public interface IDestinationProber
{
    ClusterProtocol Protocol { get; }

    /// <summary>Probes once; the token carries the probe timeout. Never throws for a failed probe.</summary>
    Task<ProbeResult> ProbeAsync(ClusterState cluster, DestinationState destination, CancellationToken cancellationToken);
}
