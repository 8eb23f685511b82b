using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Security.Cryptography.X509Certificates;
using ImagingProxy.Configuration;
using Microsoft.Extensions.Hosting;
using Yarp.ReverseProxy;

namespace ImagingProxy.Telemetry;

/// <summary>
/// When ImagingProxy's certificates expire, as a gauge of Unix times:
/// <list type="bullet">
/// <item><c>role="listener"</c>: the server certificate of each TLS listener (Kestrel endpoints such as Viewers, and the
/// DICOM and MLLP listeners' <c>Tls</c>), read from its file (again when the file changes);</item>
/// <item><c>role="node"</c>: each <c>tls://</c> node's certificate as it last presented it (<see cref="NodeTls.Expirations"/>);</item>
/// <item><c>role="client"</c>: ImagingProxy's client certificate for a cluster's nodes.</item>
/// </list>
/// Only listeners, clusters and destinations still configured are reported, so a removed one raises no expiry alert,
/// nor does a client certificate taken out of a cluster's metadata or a node moved from tls:// to tcp://.
/// Also counts the TLS handshakes that fail on the DICOM and MLLP listeners.
/// </summary>
public sealed class TlsMetrics : IDisposable
{
    private readonly Meter _meter;
    private readonly NodeTls _nodeTls;
    private readonly IProxyStateLookup _state;
    private readonly ConfigurationGate _configuration;
    private readonly string _contentRoot;
    private readonly ConcurrentDictionary<string, (long Stamp, DateTimeOffset? NotAfter)> _listenerCertificates = new(StringComparer.Ordinal);
    private readonly Counter<long> _handshakeFailures;

    public TlsMetrics(IMeterFactory meterFactory, NodeTls nodeTls, IProxyStateLookup state, ConfigurationGate configuration, IHostEnvironment environment)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        ArgumentNullException.ThrowIfNull(environment);
        _meter = meterFactory.Create(ImagingProxyTelemetry.MeterName);
        _nodeTls = nodeTls;
        _state = state;
        _configuration = configuration;
        _contentRoot = environment.ContentRootPath;
        _meter.CreateObservableGauge("imagingproxy.tls.certificate.expiration_timestamp", Observe, "s",
            "When a certificate expires (Unix time): role listener (a TLS listener's server certificate), node (a tls:// node's, as last presented) or client (ImagingProxy's own for a cluster's nodes).");
        _handshakeFailures = _meter.CreateCounter<long>("imagingproxy.tls.handshake_failures", "{handshake}",
            "TLS handshakes that failed on a DICOM or MLLP listener, by listener, protocol and reason (no_client_hello, handshake, timeout, shutdown).");
    }

    /// <summary>Counts a failed TLS handshake on a DICOM or MLLP listener.</summary>
    public void HandshakeFailed(string listener, string protocol, string reason)
        => _handshakeFailures.Add(1, new TagList { { "listener", listener }, { "protocol", protocol }, { "reason", reason } });

    public void Dispose() => _meter.Dispose();

    private IEnumerable<Measurement<double>> Observe()
    {
        foreach (var (listener, path, password) in ListenerCertificates())
        {
            if (NotAfter(path, password) is { } notAfter)
            {
                yield return new Measurement<double>(notAfter.ToUnixTimeSeconds(), [new("listener", listener), new("role", "listener")]);
            }
        }

        foreach (var (cluster, destination, role, notAfter) in _nodeTls.Expirations())
        {
            if (!_state.TryGetCluster(cluster, out var state) || (destination.Length > 0 && !state.Destinations.ContainsKey(destination)))
            {
                continue;
            }

            // A certificate no longer in use (the client certificate taken out of the cluster's metadata, a node moved
            // to tcp://) raises no expiry alert either: the value is the one from its last session.
            var clusterSection = _configuration.Accepted.GetSection("ReverseProxy:Clusters").GetSection(cluster);
            if (role == NodeTls.ClientRole
                ? string.IsNullOrEmpty(clusterSection.GetSection("Metadata")[MetadataKeys.TlsClientCertificatePath])
                : !(TcpAddress.TryParse(clusterSection.GetSection("Destinations").GetSection(destination)["Address"], out var address) && address.Tls))
            {
                continue;
            }

            yield return new Measurement<double>(notAfter.ToUnixTimeSeconds(), [new("cluster", cluster), new("destination", destination.Length > 0 ? destination : "none"), new("role", role)]);
        }
    }

    /// <summary>
    /// The certificate files of the TLS listeners in the current configuration, relative paths read from the content root
    /// as Kestrel and the DICOM and MLLP listeners read them (<see cref="ServerCertificateFile.FullPath"/>).
    /// </summary>
    private IEnumerable<(string Listener, string Path, string? Password)> ListenerCertificates()
    {
        var configuration = _configuration.Configuration;
        foreach (var endpoint in configuration.GetSection("Kestrel:Endpoints").GetChildren())
        {
            if (endpoint["Certificate:Path"] is { Length: > 0 } path)
            {
                yield return (endpoint.Key, ServerCertificateFile.FullPath(path, _contentRoot), endpoint["Certificate:Password"]);
            }
        }

        if (configuration["Kestrel:Certificates:Default:Path"] is { Length: > 0 } defaultPath)
        {
            yield return ("default", ServerCertificateFile.FullPath(defaultPath, _contentRoot), configuration["Kestrel:Certificates:Default:Password"]);
        }

        foreach (var kind in (string[])["Dicom", "Mllp"])
        {
            foreach (var listener in configuration.GetSection($"{ImagingProxyOptions.SectionName}:{kind}:Listeners").GetChildren())
            {
                if (listener["Tls:Path"] is { Length: > 0 } path)
                {
                    yield return (listener.Key, ServerCertificateFile.FullPath(path, _contentRoot), listener["Tls:Password"]);
                }
            }
        }
    }

    /// <summary>A certificate file's expiry, read again only when the file changed; null when it cannot be read.</summary>
    private DateTimeOffset? NotAfter(string path, string? password)
    {
        var stamp = NodeTls.Stamp(path);
        if (_listenerCertificates.TryGetValue(path, out var known) && known.Stamp == stamp)
        {
            return known.NotAfter;
        }

        DateTimeOffset? notAfter = null;
        try
        {
            // The first certificate of a PEM file is the server's own; otherwise the file is PKCS#12, as Kestrel reads it.
            var text = File.ReadAllText(path);
            using var certificate = text.Contains("-----BEGIN CERTIFICATE-----", StringComparison.Ordinal)
                ? X509Certificate2.CreateFromPem(text)
                : X509CertificateLoader.LoadPkcs12FromFile(path, password);
            notAfter = new DateTimeOffset(certificate.NotAfter.ToUniversalTime());
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
        {
            // A listener whose certificate cannot be read does not serve TLS either; its own errors say why.
        }

        _listenerCertificates[path] = (stamp, notAfter);
        return notAfter;
    }
}
