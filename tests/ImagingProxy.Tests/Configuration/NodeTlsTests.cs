using System.Security.Cryptography.X509Certificates;
using ImagingProxy.Configuration;
using ImagingProxy.Testing;
using Microsoft.Extensions.Configuration;
using Yarp.ReverseProxy.Configuration;

namespace ImagingProxy.Tests.Configuration;

public class NodeTlsTests
{
    [Theory]
    [InlineData("tls://pacs1.hospital.local:2762", "pacs1.hospital.local", 2762, true)]
    [InlineData("tcp://10.0.0.5:104", "10.0.0.5", 104, false)]
    [InlineData("tls://[::1]:2762", "::1", 2762, true)]
    public void Addresses_are_tcp_or_tls_and_print_back_as_written(string text, string host, int port, bool tls)
    {
        Assert.True(TcpAddress.TryParse(text, out var address));
        Assert.Equal(new TcpAddress(host, port, tls), address);
        Assert.Equal(text, address.ToString());
    }

    [Theory]
    [InlineData("tls://pacs1")]
    [InlineData("ssl://pacs1:2762")]
    [InlineData("https://pacs1:2762")]
    public void Other_schemes_and_missing_ports_are_not_addresses(string text)
        => Assert.False(TcpAddress.TryParse(text, out _));

    [Fact]
    public void The_server_name_is_the_hosts_unless_the_destination_names_one_and_a_ca_file_replaces_the_system_roots()
    {
        using var ca = new TestCertificateAuthority();
        var client = ca.IssueClient();
        var cluster = Cluster(new()
        {
            [MetadataKeys.TlsCaPath] = ca.CertificatePath,
            [MetadataKeys.TlsClientCertificatePath] = client.CertificatePath,
            [MetadataKeys.TlsClientKeyPath] = client.KeyPath,
        });
        var tls = new NodeTls();

        var byHost = tls.ClientOptions(cluster, new DestinationConfig { Address = "tls://127.0.0.1:2762" }, new TcpAddress("127.0.0.1", 2762, true));
        var byName = tls.ClientOptions(
            cluster,
            new DestinationConfig { Address = "tls://127.0.0.1:2762", Metadata = new Dictionary<string, string> { [MetadataKeys.TlsServerName] = "pacs1.hospital.local" } },
            new TcpAddress("127.0.0.1", 2762, true));

        Assert.Equal("127.0.0.1", byHost.TargetHost);
        Assert.Equal("pacs1.hospital.local", byName.TargetHost);
        var policy = Assert.IsType<X509ChainPolicy>(byHost.CertificateChainPolicy);
        Assert.Equal(X509ChainTrustMode.CustomRootTrust, policy.TrustMode);
        Assert.Equal("CN=ImagingProxy Test CA", Assert.Single(policy.CustomTrustStore).Subject);
        Assert.Equal("CN=imagingproxy", byHost.ClientCertificateContext!.TargetCertificate.Subject);
    }

    [Fact]
    public void A_client_certificate_issued_by_an_intermediate_ca_is_sent_with_the_intermediates_of_its_pem_file()
    {
        // A hospital PKI: root -> issuing CA -> ImagingProxy's client certificate; the node trusts the root only, so the
        // issuing CA, second in the PEM file as for the listeners' certificates, must go out with the certificate.
        var directory = Directory.CreateTempSubdirectory("imagingproxy-chain-").FullName;
        try
        {
            using var rootKey = System.Security.Cryptography.RSA.Create(2048);
            using var root = Authority("CN=Hospital Root CA", rootKey, issuer: null);
            using var issuingKey = System.Security.Cryptography.RSA.Create(2048);
            using var issuing = Authority("CN=Hospital Issuing CA", issuingKey, root);
            using var leafKey = System.Security.Cryptography.RSA.Create(2048);
            var request = new CertificateRequest("CN=imagingproxy", leafKey, System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
            request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
            request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuing, true, false));
            using var leaf = request.Create(issuing, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(10), [1, 2, 3, 4]);
            var certificatePath = Path.Combine(directory, "proxy.crt");
            var keyPath = Path.Combine(directory, "proxy.key");
            File.WriteAllText(certificatePath, leaf.ExportCertificatePem() + "\n" + issuing.ExportCertificatePem() + "\n");
            File.WriteAllText(keyPath, leafKey.ExportPkcs8PrivateKeyPem());
            var cluster = Cluster(new()
            {
                [MetadataKeys.TlsClientCertificatePath] = certificatePath,
                [MetadataKeys.TlsClientKeyPath] = keyPath,
            });

            var context = new NodeTls().ClientOptions(cluster, new DestinationConfig { Address = "tls://127.0.0.1:2762" }, new TcpAddress("127.0.0.1", 2762, true)).ClientCertificateContext!;

            Assert.Equal("CN=imagingproxy", context.TargetCertificate.Subject);
            Assert.Equal("CN=Hospital Issuing CA", Assert.Single(context.IntermediateCertificates).Subject);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    private static X509Certificate2 Authority(string subject, System.Security.Cryptography.RSA key, X509Certificate2? issuer)
    {
        var request = new CertificateRequest(subject, key, System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(true, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, false));
        if (issuer is null)
        {
            return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-2), DateTimeOffset.UtcNow.AddDays(30));
        }

        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer, true, false));
        using var signed = request.Create(issuer, DateTimeOffset.UtcNow.AddDays(-2), DateTimeOffset.UtcNow.AddDays(20), [9, 8, 7]);
        return signed.CopyWithPrivateKey(key);
    }

    [Fact]
    public void Without_tls_metadata_the_system_trust_store_decides_and_no_client_certificate_is_sent()
    {
        var options = new NodeTls().ClientOptions(Cluster([]), new DestinationConfig { Address = "tls://pacs1:2762" }, new TcpAddress("pacs1", 2762, true));

        Assert.Null(options.CertificateChainPolicy);
        Assert.Null(options.ClientCertificateContext);
    }

    [Fact]
    public void A_rotated_ca_file_is_read_again_and_an_unchanged_one_is_not()
    {
        using var first = new TestCertificateAuthority("First CA");
        using var second = new TestCertificateAuthority("Second CA");
        var path = Path.Combine(first.Directory, "bundle.pem");
        File.Copy(first.CertificatePath, path);
        var cluster = Cluster(new() { [MetadataKeys.TlsCaPath] = path });
        var tls = new NodeTls();
        var destination = new DestinationConfig { Address = "tls://127.0.0.1:2762" };
        var address = new TcpAddress("127.0.0.1", 2762, true);

        var before = tls.ClientOptions(cluster, destination, address).CertificateChainPolicy!.CustomTrustStore;
        var again = tls.ClientOptions(cluster, destination, address).CertificateChainPolicy!.CustomTrustStore;
        File.Copy(second.CertificatePath, path, overwrite: true);
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow.AddMinutes(1));
        var after = tls.ClientOptions(cluster, destination, address).CertificateChainPolicy!.CustomTrustStore;

        Assert.Equal("CN=First CA", Assert.Single(before).Subject);
        Assert.Same(before[0], again[0]);
        Assert.Equal("CN=Second CA", Assert.Single(after).Subject);
    }

    [Fact]
    public void A_ca_file_in_a_kubernetes_secret_volume_is_read_again_when_the_kubelet_swaps_the_data_link()
    {
        using var first = new TestCertificateAuthority("First CA");
        using var second = new TestCertificateAuthority("Second CA");
        // The kubelet's layout: ca.crt -> ..data/ca.crt, ..data -> ..<timestamp>; a rotation swaps ..data only.
        var volume = Directory.CreateTempSubdirectory("imagingproxy-secret-").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(volume, "..v1"));
            Directory.CreateDirectory(Path.Combine(volume, "..v2"));
            File.Copy(first.CertificatePath, Path.Combine(volume, "..v1", "ca.crt"));
            File.Copy(second.CertificatePath, Path.Combine(volume, "..v2", "ca.crt"));
            File.SetLastWriteTimeUtc(Path.Combine(volume, "..v1", "ca.crt"), new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc));
            File.SetLastWriteTimeUtc(Path.Combine(volume, "..v2", "ca.crt"), new DateTime(2026, 1, 1, 0, 0, 0, DateTimeKind.Utc));
            var data = Path.Combine(volume, "..data");
            File.CreateSymbolicLink(data, "..v1");
            var path = Path.Combine(volume, "ca.crt");
            File.CreateSymbolicLink(path, Path.Combine("..data", "ca.crt"));
            var cluster = Cluster(new() { [MetadataKeys.TlsCaPath] = path });
            var tls = new NodeTls();
            var destination = new DestinationConfig { Address = "tls://127.0.0.1:2762" };
            var address = new TcpAddress("127.0.0.1", 2762, true);

            var before = tls.ClientOptions(cluster, destination, address).CertificateChainPolicy!.CustomTrustStore;
            File.Delete(data);
            File.CreateSymbolicLink(data, "..v2");
            var after = tls.ClientOptions(cluster, destination, address).CertificateChainPolicy!.CustomTrustStore;

            Assert.Equal("CN=First CA", Assert.Single(before).Subject);
            Assert.Equal("CN=Second CA", Assert.Single(after).Subject);
        }
        finally
        {
            Directory.Delete(volume, recursive: true);
        }
    }

    [Fact]
    public void A_certificate_file_gone_after_loading_is_an_error_of_the_settings_not_of_the_node()
    {
        var cluster = Cluster(new() { [MetadataKeys.TlsCaPath] = "/nonexistent/ca.pem" });

        var error = Assert.Throws<InvalidOperationException>(() => new NodeTls().ClientOptions(cluster, new DestinationConfig { Address = "tls://h:1" }, new TcpAddress("h", 1, true)));

        Assert.Contains("/nonexistent/ca.pem", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tls_settings_are_validated_file_by_file_and_only_dicom_and_mllp_clusters_take_them()
    {
        using var ca = new TestCertificateAuthority();
        var client = ca.IssueClient();
        var notPem = Path.Combine(ca.Directory, "not.pem");
        File.WriteAllText(notPem, "not a certificate");
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Admin:Url"] = "http://127.0.0.1:9901",
            ["ReverseProxy:Clusters:good:Metadata:Protocol"] = "Dicom",
            ["ReverseProxy:Clusters:good:Metadata:Tls.CaPath"] = ca.CertificatePath,
            ["ReverseProxy:Clusters:good:Metadata:Tls.ClientCertificatePath"] = client.CertificatePath,
            ["ReverseProxy:Clusters:good:Metadata:Tls.ClientKeyPath"] = client.KeyPath,
            ["ReverseProxy:Clusters:good:Destinations:n1:Address"] = "tls://127.0.0.1:2762",
            ["ReverseProxy:Clusters:good:Destinations:n1:Metadata:Tls.ServerName"] = "pacs1.hospital.local",
            ["ReverseProxy:Clusters:badfiles:Metadata:Protocol"] = "Dicom",
            ["ReverseProxy:Clusters:badfiles:Metadata:Tls.CaPath"] = notPem,
            ["ReverseProxy:Clusters:badfiles:Metadata:Tls.ClientCertificatePath"] = client.CertificatePath,
            ["ReverseProxy:Clusters:badfiles:Destinations:n1:Address"] = "tls://127.0.0.1:2762",
            ["ReverseProxy:Clusters:badfiles:Destinations:n1:Metadata:Tls.ServerName"] = " ",
            ["ReverseProxy:Clusters:missing:Metadata:Protocol"] = "Dicom",
            ["ReverseProxy:Clusters:missing:Metadata:Tls.CaPath"] = "/nonexistent/ca.pem",
            ["ReverseProxy:Clusters:missing:Destinations:n1:Address"] = "tls://127.0.0.1:2762",
            ["ReverseProxy:Clusters:hl7:Metadata:Protocol"] = "Mllp",
            ["ReverseProxy:Clusters:hl7:Metadata:Tls.CaPath"] = ca.CertificatePath,
            ["ReverseProxy:Clusters:hl7:Destinations:n1:Address"] = "tls://127.0.0.1:2575",
            ["ReverseProxy:Clusters:web:Metadata:Tls.CaPath"] = ca.CertificatePath,
            ["ReverseProxy:Clusters:web:Destinations:n1:Address"] = "tls://127.0.0.1:443",
        }).Build();

        var errors = ConfigurationValidator.Validate(config);

        Assert.DoesNotContain(errors, e => e.Contains(":good:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Clusters:badfiles:Metadata:Tls.CaPath:", StringComparison.Ordinal) && e.Contains("holds no PEM certificate", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Clusters:badfiles:Metadata: Tls.ClientCertificatePath and Tls.ClientKeyPath go together", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Clusters:badfiles:Destinations:n1:Metadata:Tls.ServerName: empty", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Clusters:missing:Metadata:Tls.CaPath: cannot read '/nonexistent/ca.pem'", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.Contains(":hl7:", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Clusters:web:Destinations:n1:Address", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Clusters:web:Metadata: Tls.* settings apply to the tls:// destinations of Dicom and Mllp clusters", StringComparison.Ordinal));
    }

    [Fact]
    public void Relative_tls_file_paths_are_read_from_the_content_root_when_validated_and_when_a_session_opens()
    {
        // The CA directory is the content root; the working directory is elsewhere (the test's output directory).
        using var ca = new TestCertificateAuthority();
        var client = ca.IssueClient();
        var relative = new Dictionary<string, string>
        {
            [MetadataKeys.TlsCaPath] = Path.GetFileName(ca.CertificatePath),
            [MetadataKeys.TlsClientCertificatePath] = Path.GetFileName(client.CertificatePath),
            [MetadataKeys.TlsClientKeyPath] = Path.GetFileName(client.KeyPath),
        };
        Assert.False(File.Exists(relative[MetadataKeys.TlsCaPath]));
        var section = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ReverseProxy:Clusters:pacs:Metadata:Tls.CaPath"] = relative[MetadataKeys.TlsCaPath],
            ["ReverseProxy:Clusters:pacs:Metadata:Tls.ClientCertificatePath"] = relative[MetadataKeys.TlsClientCertificatePath],
            ["ReverseProxy:Clusters:pacs:Metadata:Tls.ClientKeyPath"] = relative[MetadataKeys.TlsClientKeyPath],
            ["ReverseProxy:Clusters:pacs:Destinations:n1:Address"] = "tls://127.0.0.1:2762",
        }).Build().GetSection("ReverseProxy:Clusters:pacs");
        var errors = new List<string>();

        NodeTls.Validate(section, ClusterProtocol.Dicom, errors, ca.Directory);
        var options = new NodeTls(ca.Directory).ClientOptions(Cluster(relative), new DestinationConfig { Address = "tls://127.0.0.1:2762" }, new TcpAddress("127.0.0.1", 2762, true));

        Assert.Empty(errors);
        Assert.Single(Assert.IsType<X509ChainPolicy>(options.CertificateChainPolicy).CustomTrustStore);
        Assert.NotNull(options.ClientCertificateContext);
    }

    private static ClusterConfig Cluster(Dictionary<string, string> metadata)
    {
        metadata[MetadataKeys.Protocol] = "Dicom";
        return new ClusterConfig { ClusterId = "pacs", Metadata = metadata };
    }
}
