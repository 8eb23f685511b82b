using System.Diagnostics.Metrics;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using ImagingProxy.Telemetry;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;

namespace ImagingProxy.Tests.Telemetry;

/// <summary>The certificate expiry gauge for the proxy's own TLS listeners (the node roles are covered by the node-TLS peer tests).</summary>
public sealed class TlsMetricsTests
{
    [Fact(Timeout = 60_000)]
    public async Task Each_tls_listener_reports_when_its_server_certificate_expires_and_a_replaced_file_is_read_again()
    {
        using var viewers = new TestCertificate();
        using var ca = new TestCertificateAuthority();
        var (dicomCertificate, dicomKey) = ca.IssueServer();
        var dicom = $$"""
            { "Dicom": { "Listeners": { "dicomtls": { "Address": "127.0.0.1", "Port": 0, "Tls": { "Path": {{JsonSerializer.Serialize(dicomCertificate)}}, "KeyPath": {{JsonSerializer.Serialize(dicomKey)}} } } } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(viewers, "{}", imagingProxy: dicom));
        using var expirations = new MetricCollector<double>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.tls.certificate.expiration_timestamp");

        expirations.RecordObservableInstruments();
        var first = Listeners(expirations);

        Assert.Equal(2, first.Count);
        Assert.Equal(NotAfter(viewers.CertificatePath), first["Viewers"]);
        Assert.Equal(NotAfter(dicomCertificate), first["dicomtls"]);

        // The DICOM listener's certificate file is replaced by one that expires sooner: the next scrape says so.
        using var key = System.Security.Cryptography.RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
        using var sooner = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(3));
        await File.WriteAllTextAsync(dicomCertificate, sooner.ExportCertificatePem());
        File.SetLastWriteTimeUtc(dicomCertificate, DateTime.UtcNow.AddMinutes(1));
        expirations.Clear();
        expirations.RecordObservableInstruments();

        Assert.Equal(NotAfter(dicomCertificate), Listeners(expirations)["dicomtls"]);
        Assert.True(NotAfter(dicomCertificate) < first["dicomtls"]);
    }

    private static Dictionary<string, double> Listeners(MetricCollector<double> collector)
        => collector.GetMeasurementSnapshot().Where(m => Equals(m.Tags["role"], "listener")).ToDictionary(m => (string)m.Tags["listener"]!, m => m.Value);

    private static double NotAfter(string path)
    {
        using var certificate = X509Certificate2.CreateFromPem(File.ReadAllText(path));
        return new DateTimeOffset(certificate.NotAfter.ToUniversalTime()).ToUnixTimeSeconds();
    }
}
