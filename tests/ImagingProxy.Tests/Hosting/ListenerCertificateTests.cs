using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using System.Text.Json.Nodes;
using ImagingProxy.Telemetry;
using ImagingProxy.Testing;
using ImagingProxy.Tests.Dicom;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Tests.Hosting;

/// <summary>The certificate a DICOM TLS listener presents follows its files and its settings without a restart.</summary>
public sealed class ListenerCertificateTests
{
    [Fact(Timeout = 60_000)]
    public async Task A_tls_listener_presents_the_rotated_certificate_of_a_kubernetes_secret_volume_as_the_expiry_gauge_reports_it()
    {
        using var ca = new TestCertificateAuthority();
        var volume = Directory.CreateTempSubdirectory("imagingproxy-secret-").FullName;
        try
        {
            // The kubelet's layout: tls.crt -> ..data/tls.crt, ..data -> ..v1; a rotation swaps ..data only.
            var (first, firstKey) = ca.IssueServer();
            var (second, secondKey) = SelfSigned(volume, DateTimeOffset.UtcNow.AddDays(3));
            foreach (var (version, certificate, key) in new[] { ("..v1", first, firstKey), ("..v2", second, secondKey) })
            {
                Directory.CreateDirectory(Path.Combine(volume, version));
                File.Copy(certificate, Path.Combine(volume, version, "tls.crt"));
                File.Copy(key, Path.Combine(volume, version, "tls.key"));
                File.SetLastWriteTimeUtc(Path.Combine(volume, version, "tls.crt"), new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc));
                File.SetLastWriteTimeUtc(Path.Combine(volume, version, "tls.key"), new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc));
            }

            var data = Path.Combine(volume, "..data");
            File.CreateSymbolicLink(data, "..v1");
            File.CreateSymbolicLink(Path.Combine(volume, "tls.crt"), Path.Combine("..data", "tls.crt"));
            File.CreateSymbolicLink(Path.Combine(volume, "tls.key"), Path.Combine("..data", "tls.key"));
            using var viewers = new TestCertificate();
            await using var proxy = await TestProxy.StartAsync(TestConfig.Build(viewers, "{}", imagingProxy: Dicom(Path.Combine(volume, "tls.crt"), Path.Combine(volume, "tls.key"))));
            using var expirations = new MetricCollector<double>(proxy.Services.GetRequiredService<IMeterFactory>(), ImagingProxyTelemetry.MeterName, "imagingproxy.tls.certificate.expiration_timestamp");

            var before = await PresentedAsync(proxy.Port("dicomtls"));
            File.Delete(data);
            File.CreateSymbolicLink(data, "..v2");
            var after = await PresentedAsync(proxy.Port("dicomtls"));
            expirations.RecordObservableInstruments();

            Assert.Equal(Thumbprint(first), before.Thumbprint);
            Assert.Equal(Thumbprint(second), after.Thumbprint);
            var gauge = Assert.Single(expirations.GetMeasurementSnapshot(), m => Equals(m.Tags["listener"], "dicomtls"));
            Assert.Equal(new DateTimeOffset(after.NotAfter.ToUniversalTime()).ToUnixTimeSeconds(), gauge.Value);
        }
        finally
        {
            Directory.Delete(volume, recursive: true);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task A_relative_tls_path_is_read_from_the_content_root_whatever_the_working_directory()
    {
        // The host's content root is its own directory (this test's output directory); it runs in an empty one.
        using var viewers = new TestCertificate();
        using var listener = new TestCertificate();
        var relative = $"listener-tls-{Guid.NewGuid():N}";
        var inContentRoot = Directory.CreateDirectory(Path.Combine(AppContext.BaseDirectory, relative)).FullName;
        var workingDirectory = Directory.CreateTempSubdirectory("imagingproxy-cwd-").FullName;
        try
        {
            File.Copy(listener.CertificatePath, Path.Combine(inContentRoot, "tls.crt"));
            File.Copy(listener.KeyPath, Path.Combine(inContentRoot, "tls.key"));
            var config = Path.Combine(workingDirectory, "config.json");
            await File.WriteAllTextAsync(config, TestConfig.Build(viewers, "{}", imagingProxy: Dicom(Path.Combine(relative, "tls.crt"), Path.Combine(relative, "tls.key"))));
            using var host = HostProcess.Start(["--config", config], workingDirectory: workingDirectory);

            var presented = await PresentedAsync(await host.PortAsync("dicomtls"));
            using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{await host.PortAsync("Admin")}/") };
            var metrics = await admin.GetStringAsync(new Uri("/metrics", UriKind.Relative));

            Assert.Equal(Thumbprint(listener.CertificatePath), presented.Thumbprint);
            var expiry = new DateTimeOffset(presented.NotAfter.ToUniversalTime()).ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture);
            Assert.Contains(metrics.Split('\n'), line => line.StartsWith("imagingproxy_tls_certificate_expiration_timestamp", StringComparison.Ordinal)
                && line.Contains("listener=\"dicomtls\"", StringComparison.Ordinal) && line.Contains(" " + expiry, StringComparison.Ordinal));
        }
        finally
        {
            Directory.Delete(inContentRoot, recursive: true);
            Directory.Delete(workingDirectory, recursive: true);
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task A_tls_listener_serves_a_pem_certificate_whose_key_is_encrypted_with_the_password()
    {
        using var viewers = new TestCertificate();
        using var listener = new TestCertificate();
        var encryptedKey = Path.Combine(listener.Directory, "encrypted.key");
        using (var key = RSA.Create())
        {
            key.ImportFromPem(await File.ReadAllTextAsync(listener.KeyPath));
            await File.WriteAllTextAsync(encryptedKey, key.ExportEncryptedPkcs8PrivateKeyPem("secret", new PbeParameters(PbeEncryptionAlgorithm.Aes256Cbc, HashAlgorithmName.SHA256, 10000)));
        }

        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(viewers, "{}", imagingProxy: Dicom(listener.CertificatePath, encryptedKey, "secret")));

        Assert.Equal(Thumbprint(listener.CertificatePath), (await PresentedAsync(proxy.Port("dicomtls"))).Thumbprint);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_reload_that_changes_the_certificate_paths_applies_to_the_next_handshake_and_a_file_that_fails_to_load_keeps_the_last_one_with_one_warning()
    {
        using var ca = new TestCertificateAuthority();
        using var viewers = new TestCertificate();
        var (first, firstKey) = ca.IssueServer();
        var (second, secondKey) = ca.IssueServer();
        await using var proxy = await TestProxy.StartAsync(TestConfig.Build(viewers, "{}", imagingProxy: Dicom(first, firstKey)), builder => builder.Logging.AddFakeLogging());
        var port = proxy.Port("dicomtls");

        var before = await PresentedAsync(port);
        Assert.Empty(await proxy.ReloadAsync(TestConfig.Build(viewers, "{}", imagingProxy: Dicom(second, secondKey))));
        var reloaded = await PresentedAsync(port);
        await File.WriteAllTextAsync(second, "-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n");
        File.SetLastWriteTimeUtc(second, DateTime.UtcNow.AddMinutes(1));
        var broken = await PresentedAsync(port);
        var again = await PresentedAsync(port);

        Assert.Equal(Thumbprint(first), before.Thumbprint);
        Assert.Equal(reloaded.Thumbprint, broken.Thumbprint);
        Assert.Equal(reloaded.Thumbprint, again.Thumbprint);
        Assert.NotEqual(before.Thumbprint, reloaded.Thumbprint);
        var warnings = proxy.Services.GetFakeLogCollector().GetSnapshot().Where(r => r.Category == "ImagingProxy.Hosting" && r.Level == LogLevel.Warning && r.Id.Id == 5).ToList();
        var warning = Assert.Single(warnings);
        Assert.Contains("dicomtls", warning.Message, StringComparison.Ordinal);
        Assert.Contains(second, warning.Message, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Kestrel_endpoint_defaults_apply_to_a_tls_listener()
    {
        using var ca = new TestCertificateAuthority();
        using var viewers = new TestCertificate();
        var (certificate, key) = ca.IssueServer();
        var protocols = JsonNode.Parse(TestConfig.Build(viewers, "{}", imagingProxy: Dicom(certificate, key)))!;
        protocols["Kestrel"]!["EndpointDefaults"] = new JsonObject { ["SslProtocols"] = new JsonArray("Tls12") };
        var clientCertificates = JsonNode.Parse(TestConfig.Build(viewers, "{}", imagingProxy: Dicom(certificate, key)))!;
        clientCertificates["Kestrel"]!["EndpointDefaults"] = new JsonObject { ["ClientCertificateMode"] = "RequireCertificate" };

        await using (var proxy = await TestProxy.StartAsync(protocols.ToJsonString()))
        {
            var tls12 = await PresentedAsync(proxy.Port("dicomtls"), SslProtocols.Tls12);
            await Assert.ThrowsAnyAsync<Exception>(() => PresentedAsync(proxy.Port("dicomtls"), SslProtocols.Tls13));
            Assert.Equal(Thumbprint(certificate), tls12.Thumbprint);
        }

        await using (var proxy = await TestProxy.StartAsync(clientCertificates.ToJsonString()))
        {
            // A client without a certificate is refused: an A-ASSOCIATE-RQ gets no answer (A-ASSOCIATE-RJ, no route, if served).
            Assert.Equal(0, await AnswerToAssociateRequestAsync(proxy.Port("dicomtls")));
        }
    }

    /// <summary>
    /// The bytes answering an A-ASSOCIATE-RQ sent over TLS without a client certificate; 0 when the session fails or
    /// ends (the server may refuse the client only after the client's side of the handshake is done).
    /// </summary>
    private static async Task<int> AnswerToAssociateRequestAsync(int port)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        await using var tls = new SslStream(client.GetStream());
        try
        {
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null,
            });
            await tls.WriteAsync(DicomCaptures.AssociateRequest);
            return await tls.ReadAsync(new byte[256]);
        }
        catch (Exception ex) when (ex is IOException or AuthenticationException)
        {
            return 0;
        }
    }

    private static string Dicom(string certificate, string key, string? password = null) => $$"""
        { "Dicom": { "Listeners": { "dicomtls": { "Address": "127.0.0.1", "Port": 0, "Tls": { "Path": {{JsonSerializer.Serialize(certificate)}}, "KeyPath": {{JsonSerializer.Serialize(key)}}{{(password is null ? "" : $", \"Password\": {JsonSerializer.Serialize(password)}")}} } } } } }
        """;

    /// <summary>The certificate the listener presents in a TLS handshake (not validated: only looked at).</summary>
    private static async Task<(string Thumbprint, DateTime NotAfter)> PresentedAsync(int port, SslProtocols protocols = SslProtocols.None)
    {
        using var client = new TcpClient();
        await client.ConnectAsync(IPAddress.Loopback, port);
        await using var tls = new SslStream(client.GetStream());
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            EnabledSslProtocols = protocols,
            RemoteCertificateValidationCallback = (_, certificate, _, _) => certificate is not null,
        });
        using var presented = X509CertificateLoader.LoadCertificate(tls.RemoteCertificate!.GetRawCertData());
        return (presented.Thumbprint, presented.NotAfter);
    }

    private static string Thumbprint(string certificatePath)
    {
        using var certificate = X509Certificate2.CreateFromPem(File.ReadAllText(certificatePath));
        return certificate.Thumbprint;
    }

    private static (string Certificate, string Key) SelfSigned(string directory, DateTimeOffset notAfter)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        using var certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), notAfter);
        var certificatePath = Path.Combine(directory, "rotated.crt");
        var keyPath = Path.Combine(directory, "rotated.key");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem());
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath);
    }
}
