using System.Diagnostics.Metrics;
using System.Text.Json;
using System.Text.Json.Nodes;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.PeerTests.Dicom;

/// <summary>
/// A DICOM TLS listener that requires client certificates (<c>Kestrel:EndpointDefaults:ClientCertificateMode</c>).
/// Peer: dcmtk echoscu over TLS (<c>+tla</c>: no certificate of its own; <c>+tls key cert</c>: a certificate).
/// </summary>
public sealed class DicomListenerTlsTests
{
    // The failure line said "failed after the ClientHello (no common protocol or cipher suite, or the client refused the
    // certificate)" for a modality ImagingProxy refused for its own certificate: the operator was sent to look at the
    // wrong side. It now says which: no certificate, or the certificate and why.
    [Fact(Timeout = 120_000)]
    public async Task A_modality_without_an_acceptable_client_certificate_is_refused_and_the_failure_line_says_why()
    {
        using var ca = new TestCertificateAuthority();
        using var untrusted = new TestCertificateAuthority("Not Trusted CA");
        using var viewers = new TestCertificate();
        var (certificate, key) = ca.IssueServer();
        var (clientCertificate, clientKey) = untrusted.IssueClient("modality");
        var config = JsonNode.Parse(TestConfig.Build(viewers, "{}", imagingProxy: $$"""
            { "Dicom": { "Listeners": { "dicomtls": { "Address": "127.0.0.1", "Port": 0, "Tls": { "Path": {{JsonSerializer.Serialize(certificate)}}, "KeyPath": {{JsonSerializer.Serialize(key)}} } } } } }
            """))!;
        config["Kestrel"]!["EndpointDefaults"] = new JsonObject { ["ClientCertificateMode"] = "RequireCertificate" };
        await using var proxy = await TestProxy.StartAsync(config.ToJsonString(), builder => builder.Logging.AddFakeLogging());
        var port = proxy.Port("dicomtls");

        // Kestrel records a connection's end after the TLS watch has logged its failure.
        using var ended = new MetricCollector<double>(proxy.Services.GetRequiredService<IMeterFactory>(), "Microsoft.AspNetCore.Server.Kestrel", "kestrel.connection.duration");

        var anonymous = await Dcmtk.EchoAsync(port, "PACS", new ScuOptions { ExtraArguments = ["+tla", "+cf", ca.CertificatePath] });
        var withCertificate = await Dcmtk.EchoAsync(port, "PACS", new ScuOptions { ExtraArguments = ["+tls", clientKey, clientCertificate, "+cf", ca.CertificatePath] });

        Assert.NotEqual(0, anonymous.ExitCode);
        Assert.NotEqual(0, withCertificate.ExitCode);
        await ended.WaitForMeasurementsAsync(2, TimeSpan.FromSeconds(20));
        var lines = proxy.Services.GetFakeLogCollector().GetSnapshot().Where(r => r.Id.Id == 6).Select(r => r.Message).ToList();
        Assert.Equal(2, lines.Count);
        Assert.EndsWith(": the client sent no certificate (ClientCertificateMode RequireCertificate).", lines[0], StringComparison.Ordinal);
        Assert.EndsWith(": the client's certificate was refused: RemoteCertificateChainErrors (CN=modality).", lines[1], StringComparison.Ordinal);
    }
}
