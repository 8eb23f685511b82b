using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;

namespace ImagingProxy.Testing;

/// <summary>
/// A test CA (a hospital's own certificate authority) that issues server and client certificates, each written as PEM
/// files (certificate, unencrypted PKCS#8 key) the way an operator mounts them and dcmtk's <c>+tls</c> reads them.
/// </summary>
public sealed class TestCertificateAuthority : IDisposable
{
    private readonly RSA _key;
    private readonly X509Certificate2 _certificate;
    private readonly string _chainPem = string.Empty;
    private int _issued;

    public TestCertificateAuthority(string name = "ImagingProxy Test CA")
        : this(name, issuer: null)
    {
    }

    /// <summary>
    /// An issuing CA under <paramref name="issuer"/> (a hospital PKI's intermediate): the certificates it issues are
    /// written with this CA's certificate after them in their PEM file, the full chain short of the root.
    /// </summary>
    public TestCertificateAuthority(string name, TestCertificateAuthority? issuer)
    {
        Directory = System.IO.Directory.CreateTempSubdirectory("imagingproxy-ca-").FullName;
        _key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", _key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: true, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.KeyCertSign | X509KeyUsageFlags.CrlSign, critical: true));
        request.CertificateExtensions.Add(new X509SubjectKeyIdentifierExtension(request.PublicKey, critical: false));
        if (issuer is null)
        {
            _certificate = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        }
        else
        {
            request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(issuer._certificate, true, false));
            using var signed = request.Create(issuer._certificate, DateTimeOffset.UtcNow.AddDays(-1), new DateTimeOffset(issuer._certificate.NotAfter), [0x11, 0x22, 0x33, 0x44]);
            _certificate = signed.CopyWithPrivateKey(_key);
            _chainPem = "\n" + _certificate.ExportCertificatePem() + "\n";
        }

        CertificatePath = Path.Combine(Directory, "ca.crt");
        File.WriteAllText(CertificatePath, _certificate.ExportCertificatePem());
    }

    public string Directory { get; }

    /// <summary>The CA certificate (PEM): what <c>Tls.CaPath</c> and dcmtk's <c>+cf</c> take.</summary>
    public string CertificatePath { get; }

    /// <summary>A server certificate for <paramref name="dnsName"/> and 127.0.0.1 (server and client authentication).</summary>
    public (string CertificatePath, string KeyPath) IssueServer(string dnsName = "localhost")
        => Issue($"CN={dnsName}", san =>
        {
            san.AddDnsName(dnsName);
            san.AddIpAddress(IPAddress.Loopback);
        });

    /// <summary>A client certificate (client authentication), e.g. ImagingProxy's own towards DICOM TLS nodes.</summary>
    public (string CertificatePath, string KeyPath) IssueClient(string name = "imagingproxy")
        => Issue($"CN={name}", san => san.AddDnsName(name));

    public void Dispose()
    {
        _certificate.Dispose();
        _key.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }

    private (string CertificatePath, string KeyPath) Issue(string subject, Action<SubjectAlternativeNameBuilder> names)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest(subject, key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        names(san);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(certificateAuthority: false, hasPathLengthConstraint: false, pathLengthConstraint: 0, critical: true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature | X509KeyUsageFlags.KeyEncipherment, critical: true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1"), new Oid("1.3.6.1.5.5.7.3.2")], critical: false));
        request.CertificateExtensions.Add(X509AuthorityKeyIdentifierExtension.CreateFromCertificate(_certificate, true, false));
        var serial = new byte[8];
        RandomNumberGenerator.Fill(serial);
        serial[0] &= 0x7F;
        using var certificate = request.Create(_certificate, DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(29), serial);
        var n = Interlocked.Increment(ref _issued);
        var certificatePath = Path.Combine(Directory, $"leaf{n}.crt");
        var keyPath = Path.Combine(Directory, $"leaf{n}.key");
        File.WriteAllText(certificatePath, certificate.ExportCertificatePem() + _chainPem);
        File.WriteAllText(keyPath, key.ExportPkcs8PrivateKeyPem());
        return (certificatePath, keyPath);
    }
}
