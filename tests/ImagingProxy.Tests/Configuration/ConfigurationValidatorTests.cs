using System.Security.Cryptography.X509Certificates;
using ImagingProxy.Configuration;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Tests.Configuration;

public class ConfigurationValidatorTests
{
    private static string RepoFile(string relative)
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "ImagingProxy.sln")))
        {
            directory = directory.Parent;
        }

        return Path.Combine(directory!.FullName, relative);
    }

    private static IConfiguration Load(string path, Dictionary<string, string?>? overrides = null)
        => new ConfigurationBuilder().AddJsonFile(path).AddInMemoryCollection(overrides ?? []).Build();

    [Theory]
    [InlineData("appsettings/demo.json")]
    [InlineData("appsettings/hospital.json")]
    public void The_documented_example_configurations_are_valid(string file)
    {
        using var certificate = new ImagingProxy.Testing.TestCertificate();
        var config = Load(RepoFile(file), new()
        {
            ["Kestrel:Endpoints:Viewers:Certificate:Path"] = certificate.CertificatePath,
            ["Kestrel:Endpoints:Viewers:Certificate:KeyPath"] = certificate.KeyPath,
        });
        Assert.Empty(ConfigurationValidator.Validate(config));
    }

    [Fact]
    public void Every_problem_is_listed_at_once()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Admin:Url"] = "http://127.0.0.1:9901",
            ["Kestrel:Endpoints:Xds:Url"] = "http://127.0.0.1:17035",
            ["ReverseProxy:Clusters:pacs-dicom:Metadata:Protocol"] = "Dicom",
            ["ReverseProxy:Clusters:pacs-dicom:Destinations:pacs1:Address"] = "http://10.0.0.1:104",
            ["ReverseProxy:Clusters:pacs-dicom:HealthCheck:Active:Timeout"] = "-00:00:05",
            ["ReverseProxy:Clusters:web:Destinations:a:Address"] = "not a url",
            ["ReverseProxy:Routes:r1:ClusterId"] = "missing",
            ["ReverseProxy:Routes:r1:Match:Path"] = "/{**rest}",
            ["ImagingProxy:Dicom:Listeners:dicom:Port"] = "9901",
            ["ImagingProxy:Dicom:Routes:pacs:CalledAeTitle"] = "THIS_AE_TITLE_IS_TOO_LONG",
            ["ImagingProxy:Dicom:Routes:pacs:Cluster"] = "nope",
            ["ImagingProxy:Mllp:Listeners:hl7:Port"] = "abc",
            ["ImagingProxy:Mllp:Routes:orders:MessageType"] = "ORM^^",
            ["ImagingProxy:Mllp:Routes:orders:Cluster"] = "pacs-dicom",
            ["ImagingProxy:Xds:RegistryCluster"] = "registry",
        }).Build();

        var errors = ConfigurationValidator.Validate(config);

        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Clusters:pacs-dicom:Destinations:pacs1:Address", StringComparison.Ordinal) && e.Contains("tcp://", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Clusters:pacs-dicom:HealthCheck:Active:Timeout: must be positive", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Clusters:web:Destinations:a:Address", StringComparison.Ordinal));
        Assert.Contains(errors, e => e == "ReverseProxy:Routes:r1:ClusterId: unknown cluster 'missing'.");
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Routes:r1: serves the Viewers endpoint, which is not configured", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ImagingProxy:Dicom:Listeners:dicom: port 9901 is already used by Kestrel:Endpoints:Admin", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ImagingProxy:Dicom:Routes:pacs:CalledAeTitle", StringComparison.Ordinal));
        Assert.Contains(errors, e => e == "ImagingProxy:Dicom:Routes:pacs:Cluster: unknown cluster 'nope'.");
        Assert.Contains(errors, e => e.StartsWith("ImagingProxy:Mllp:Listeners:hl7:Port: 'abc'", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ImagingProxy:Mllp:Routes:orders:MessageType", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ImagingProxy:Mllp:Routes:orders:Cluster: cluster 'pacs-dicom' is a Dicom cluster", StringComparison.Ordinal));
        Assert.Contains(errors, e => e == "ImagingProxy:Xds:RegistryCluster: unknown cluster 'registry'.");
        Assert.Equal(12, errors.Count);
    }

    [Theory]
    [InlineData("ImagingProxy:Dicom:IdleTimeout")]
    [InlineData("ImagingProxy:Mllp:AckTimeout")]
    [InlineData("ReverseProxy:Clusters:web:HealthCheck:Active:Interval")]
    public void A_time_longer_than_a_timer_can_wait_is_rejected(string key)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ReverseProxy:Clusters:web:Destinations:a:Address"] = "http://10.0.0.11:8042",
            [key] = "60.00:00:00",
        }).Build();

        Assert.Equal([$"{key}: must be at most 49.00:00:00 (the longest a timer can wait), got '60.00:00:00'."], ConfigurationValidator.Validate(config));
    }

    [Fact]
    public void A_turned_off_endpoint_needs_nothing_and_what_it_would_serve_is_named()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Viewers:Url"] = "https://0.0.0.0:443",
            ["Kestrel:Endpoints:Viewers:Enabled"] = "false",
            ["Kestrel:Endpoints:Xds:Url"] = "http://0.0.0.0:17035",
            ["Kestrel:Endpoints:Xds:Enabled"] = "false",
            ["Kestrel:Endpoints:Admin:Url"] = "http://0.0.0.0:9901",
            ["Kestrel:Endpoints:Admin:Enabled"] = "maybe",
            ["ReverseProxy:Clusters:web:Destinations:a:Address"] = "http://10.0.0.11:8042",
            ["ReverseProxy:Routes:viewers:ClusterId"] = "web",
            ["ReverseProxy:Routes:viewers:Match:Path"] = "/{**rest}",
            ["ReverseProxy:Routes:admin:ClusterId"] = "web",
            ["ReverseProxy:Routes:admin:Match:Path"] = "/web/{**rest}",
            ["ReverseProxy:Routes:admin:Metadata:Listener"] = "Admin",
            ["ImagingProxy:Xds:RegistryCluster"] = "web",
        }).Build();

        Assert.Equal(
            [
                "Kestrel:Endpoints:Admin:Enabled: 'maybe' is not true or false.",
                "ReverseProxy:Routes:viewers: serves the Viewers endpoint, which is not configured or is turned off (Kestrel:Endpoints:Viewers); set Metadata:Listener to another endpoint.",
                "ImagingProxy:Xds:RegistryCluster: the Xds endpoint that serves XDS is not configured or is turned off (Kestrel:Endpoints:Xds).",
            ],
            ConfigurationValidator.Validate(config));
    }

    [Theory]
    [InlineData("Http", "0", "ReverseProxy:Clusters:web:Metadata:Retry.MaxAttempts: '0' must be a whole number from 1 to 10.")]
    [InlineData("Http", "11", "ReverseProxy:Clusters:web:Metadata:Retry.MaxAttempts: '11' must be a whole number from 1 to 10.")]
    [InlineData("Http", "two", "ReverseProxy:Clusters:web:Metadata:Retry.MaxAttempts: 'two' must be a whole number from 1 to 10.")]
    [InlineData("Http", "1", null)]
    [InlineData("Http", "+2", null)]
    [InlineData("Http", "10", null)]
    [InlineData("Dicom", "2", "ReverseProxy:Clusters:web:Metadata:Retry.MaxAttempts: applies to HTTP clusters only; a Dicom cluster's attempts are ImagingProxy:Dicom:MaxAttempts.")]
    public void Retry_max_attempts_is_a_small_count_on_http_clusters_only(string protocol, string value, string? expected)
        => Assert.Equal(expected is null ? [] : [expected], ValidateRetry(protocol, "Retry.MaxAttempts", value));

    [Theory]
    [InlineData("Http", "Connect", null)]
    [InlineData("Http", "beforeresponse", null)]
    [InlineData("Http", "Always", "ReverseProxy:Clusters:web:Metadata:Retry.On: 'Always' is unknown (Connect, BeforeResponse).")]
    [InlineData("Mllp", "Connect", "ReverseProxy:Clusters:web:Metadata:Retry.On: applies to HTTP clusters only; a Mllp cluster's attempts are ImagingProxy:Mllp:MaxAttempts.")]
    public void Retry_on_names_connect_or_before_response_on_http_clusters_only(string protocol, string value, string? expected)
        => Assert.Equal(expected is null ? [] : [expected], ValidateRetry(protocol, "Retry.On", value));

    [Theory]
    [InlineData("0", "ImagingProxy:SocketEngines: '0' must be a whole number from 1 to 256.")]
    [InlineData("257", "ImagingProxy:SocketEngines: '257' must be a whole number from 1 to 256.")]
    [InlineData("four", "ImagingProxy:SocketEngines: 'four' must be a whole number from 1 to 256.")]
    [InlineData("4", null)]
    public void Socket_engines_is_a_count_from_1_to_256(string value, string? expected)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?> { ["ImagingProxy:SocketEngines"] = value }).Build();
        Assert.Equal(expected is null ? [] : [expected], ConfigurationValidator.Validate(config));
    }

    [Theory]
    [InlineData("Http", "Large", null)]
    [InlineData("Http", "always", null)]
    [InlineData("Http", "Never", null)]
    [InlineData("Http", "true", "ReverseProxy:Clusters:web:Metadata:ExpectContinue: 'true' is unknown (Large, Always, Never).")]
    [InlineData("Dicom", "Always", "ReverseProxy:Clusters:web:Metadata:ExpectContinue: applies to HTTP clusters only.")]
    public void Expect_continue_is_large_always_or_never_on_http_clusters_only(string protocol, string value, string? expected)
        => Assert.Equal(expected is null ? [] : [expected], ValidateRetry(protocol, "ExpectContinue", value));

    [Theory]
    [InlineData("Http", "00:00:05", null)]
    [InlineData("Http", "five", "ReverseProxy:Clusters:web:Metadata:ExpectContinueTimeout: 'five' is not a time span (hh:mm:ss).")]
    [InlineData("Http", "00:00:00", "ReverseProxy:Clusters:web:Metadata:ExpectContinueTimeout: must be positive, got '00:00:00'.")]
    [InlineData("Dicom", "00:00:05", "ReverseProxy:Clusters:web:Metadata:ExpectContinueTimeout: applies to HTTP clusters only.")]
    public void Expect_continue_timeout_is_a_positive_time_on_http_clusters_only(string protocol, string value, string? expected)
        => Assert.Equal(expected is null ? [] : [expected], ValidateRetry(protocol, "ExpectContinueTimeout", value));

    [Theory]
    [InlineData("Http", "8", null)]
    [InlineData("Dicom", "20", null)]
    [InlineData("Mllp", "0", "ReverseProxy:Clusters:web:Destinations:a:Metadata:MaxConcurrent: '0' must be a positive whole number.")]
    [InlineData("Dicom", "ten", "ReverseProxy:Clusters:web:Destinations:a:Metadata:MaxConcurrent: 'ten' must be a positive whole number.")]
    public void Max_concurrent_is_a_positive_whole_number_on_every_protocol(string protocol, string value, string? expected)
        => Assert.Equal(expected is null ? [] : [expected], ValidateDestination(protocol, "MaxConcurrent", value));

    [Theory]
    [InlineData("Http", "true", null)]
    [InlineData("Mllp", "false", null)]
    [InlineData("Dicom", "yes", "ReverseProxy:Clusters:web:Destinations:a:Metadata:Backup: 'yes' is not true or false.")]
    public void Backup_is_true_or_false_on_every_protocol(string protocol, string value, string? expected)
        => Assert.Equal(expected is null ? [] : [expected], ValidateDestination(protocol, "Backup", value));

    private static IReadOnlyList<string> ValidateDestination(string protocol, string key, string value)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ReverseProxy:Clusters:web:Metadata:Protocol"] = protocol,
            ["ReverseProxy:Clusters:web:Destinations:a:Address"] = protocol == "Http" ? "http://10.0.0.11:8042" : "tcp://10.0.0.11:104",
            [$"ReverseProxy:Clusters:web:Destinations:a:Metadata:{key}"] = value,
        }).Build();

        return ConfigurationValidator.Validate(config);
    }

    [Theory]
    [InlineData("Http", "00:00:30", null)]
    [InlineData("Dicom", "00:02:00", null)]
    [InlineData("Mllp", "00:00:10", null)]
    [InlineData("Http", "30s", "ReverseProxy:Clusters:web:Metadata:SlowStart: '30s' is not a time span (hh:mm:ss).")]
    [InlineData("Dicom", "-00:00:10", "ReverseProxy:Clusters:web:Metadata:SlowStart: must be positive, got '-00:00:10'.")]
    public void Slow_start_is_a_positive_time_on_every_protocol(string protocol, string value, string? expected)
        => Assert.Equal(expected is null ? [] : [expected], ValidateRetry(protocol, "SlowStart", value));

    [Theory]
    [InlineData("Dicom", "00:00:10", null)]
    [InlineData("Dicom", "60", "ReverseProxy:Clusters:web:Metadata:QueueTimeout: '60' is not a time span (hh:mm:ss, or d.hh:mm:ss); a bare number would be read as 60 days.")]
    [InlineData("Dicom", "60.00:00:00", "ReverseProxy:Clusters:web:Metadata:QueueTimeout: must be at most 49.00:00:00 (the longest a timer can wait), got '60.00:00:00'.")]
    [InlineData("Dicom", "00:00:00", "ReverseProxy:Clusters:web:Metadata:QueueTimeout: must be positive, got '00:00:00'.")]
    [InlineData("Dicom", "ten seconds", "ReverseProxy:Clusters:web:Metadata:QueueTimeout: 'ten seconds' is not a time span (hh:mm:ss).")]
    [InlineData("Http", "00:00:02", null)]
    [InlineData("Http", "-00:00:02", "ReverseProxy:Clusters:web:Metadata:QueueTimeout: must be positive, got '-00:00:02'.")]
    [InlineData("Mllp", "00:00:10", "ReverseProxy:Clusters:web:Metadata:QueueTimeout: HL7 clusters do not queue for a place (a message to a full cluster gets an AR/CR NAK at once, which the sender retries).")]
    public void Queue_timeout_is_a_positive_time_on_dicom_and_http_clusters(string protocol, string value, string? expected)
        => Assert.Equal(expected is null ? [] : [expected], ValidateRetry(protocol, "QueueTimeout", value));

    [Theory]
    [InlineData("0.3", null)]
    [InlineData("1", null)]
    [InlineData("0", "ReverseProxy:Clusters:web:Metadata:TransportFailureRateHealthPolicy.RateLimit: '0' must be a number above 0 and at most 1 (the share of failed requests that takes a destination out).")]
    [InlineData("30%", "ReverseProxy:Clusters:web:Metadata:TransportFailureRateHealthPolicy.RateLimit: '30%' must be a number above 0 and at most 1 (the share of failed requests that takes a destination out).")]
    [InlineData("1.5", "ReverseProxy:Clusters:web:Metadata:TransportFailureRateHealthPolicy.RateLimit: '1.5' must be a number above 0 and at most 1 (the share of failed requests that takes a destination out).")]
    public void Passive_failure_rate_limit_is_a_share_above_0_and_at_most_1(string value, string? expected)
        => Assert.Equal(expected is null ? [] : [expected], ValidateRetry("Http", "TransportFailureRateHealthPolicy.RateLimit", value));

    [Theory]
    [InlineData("Http", "500, 502,503 504", null)]
    [InlineData("Http", "5xx,429", null)]
    [InlineData("Http", "5XX", null)]
    [InlineData("Http", "404", "ReverseProxy:Clusters:web:Metadata:TransportFailureRateHealthPolicy.FailureStatusCodes: '404' is not a status passive health can count (429, 500-599, or 5xx for all of 500-599).")]
    [InlineData("Http", "503,600", "ReverseProxy:Clusters:web:Metadata:TransportFailureRateHealthPolicy.FailureStatusCodes: '600' is not a status passive health can count (429, 500-599, or 5xx for all of 500-599).")]
    [InlineData("Http", "50x", "ReverseProxy:Clusters:web:Metadata:TransportFailureRateHealthPolicy.FailureStatusCodes: '50x' is not a status passive health can count (429, 500-599, or 5xx for all of 500-599).")]
    [InlineData("Http", "+503", "ReverseProxy:Clusters:web:Metadata:TransportFailureRateHealthPolicy.FailureStatusCodes: '+503' is not a status passive health can count (429, 500-599, or 5xx for all of 500-599).")]
    [InlineData("Mllp", "5xx", "ReverseProxy:Clusters:web:Metadata:TransportFailureRateHealthPolicy.FailureStatusCodes: applies to HTTP clusters only.")]
    public void Passive_failure_status_codes_are_429_and_5xx_on_http_clusters_only(string protocol, string value, string? expected)
        => Assert.Equal(expected is null ? [] : [expected], ValidateRetry(protocol, "TransportFailureRateHealthPolicy.FailureStatusCodes", value));

    [Theory]
    [InlineData("Http", "502,503,504", null)]
    [InlineData("Http", "429 5xx", null)]
    [InlineData("Http", "200", "ReverseProxy:Clusters:web:Metadata:Retry.StatusCodes: '200' is not a status a request can be retried after (429, 500-599, or 5xx for all of 500-599).")]
    [InlineData("Dicom", "503", "ReverseProxy:Clusters:web:Metadata:Retry.StatusCodes: applies to HTTP clusters only; a Dicom cluster's attempts are ImagingProxy:Dicom:MaxAttempts.")]
    public void Retry_status_codes_are_429_and_5xx_on_http_clusters_only(string protocol, string value, string? expected)
        => Assert.Equal(expected is null ? [] : [expected], ValidateRetry(protocol, "Retry.StatusCodes", value));

    [Theory]
    [InlineData("Mllp", "true", null)]
    [InlineData("Mllp", "false", null)]
    [InlineData("Mllp", "yes", "ReverseProxy:Clusters:web:Metadata:Mllp.RetryOnReject: 'yes' is not true or false.")]
    [InlineData("Http", "true", "ReverseProxy:Clusters:web:Metadata:Mllp.RetryOnReject: applies to MLLP clusters only.")]
    public void Mllp_retry_on_reject_is_a_boolean_on_mllp_clusters_only(string protocol, string value, string? expected)
        => Assert.Equal(expected is null ? [] : [expected], ValidateRetry(protocol, "Mllp.RetryOnReject", value));

    private static IReadOnlyList<string> ValidateRetry(string protocol, string key, string value)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ReverseProxy:Clusters:web:Metadata:Protocol"] = protocol,
            ["ReverseProxy:Clusters:web:Destinations:a:Address"] = protocol == "Http" ? "http://10.0.0.11:8042" : "tcp://10.0.0.11:104",
            [$"ReverseProxy:Clusters:web:Metadata:{key}"] = value,
        }).Build();

        return ConfigurationValidator.Validate(config);
    }

    [Theory]
    [InlineData("pem-without-key", "ImagingProxy:Dicom:Listeners:dicom-tls:Tls: the certificate could not be loaded as a PFX")]
    [InlineData("key-of-another", "ImagingProxy:Dicom:Listeners:dicom-tls:Tls: the certificate could not be loaded as a PEM certificate and its matching private key")]
    [InlineData("pfx-wrong-password", "ImagingProxy:Dicom:Listeners:dicom-tls:Tls: the certificate could not be loaded as a PFX")]
    [InlineData("pfx", null)]
    [InlineData("pem", null)]
    [InlineData("encrypted-pem", null)]
    [InlineData("encrypted-pem-wrong-password", "ImagingProxy:Dicom:Listeners:dicom-tls:Tls: the certificate could not be loaded as a PEM certificate")]
    public void A_listener_certificate_is_loaded_when_validated(string kind, string? expected)
    {
        using var certificate = new ImagingProxy.Testing.TestCertificate();
        using var other = new ImagingProxy.Testing.TestCertificate();
        var pfx = Path.Combine(certificate.Directory, "listener.pfx");
        using (var loaded = X509Certificate2.CreateFromPemFile(certificate.CertificatePath, certificate.KeyPath))
        {
            File.WriteAllBytes(pfx, loaded.Export(X509ContentType.Pkcs12, "secret"));
        }

        var encryptedKey = Path.Combine(certificate.Directory, "encrypted.key");
        using (var key = System.Security.Cryptography.RSA.Create())
        {
            key.ImportFromPem(File.ReadAllText(certificate.KeyPath));
            File.WriteAllText(encryptedKey, key.ExportEncryptedPkcs8PrivateKeyPem("secret", new System.Security.Cryptography.PbeParameters(System.Security.Cryptography.PbeEncryptionAlgorithm.Aes256Cbc, System.Security.Cryptography.HashAlgorithmName.SHA256, 10000)));
        }

        var tls = kind switch
        {
            "encrypted-pem" => new Dictionary<string, string?> { ["Path"] = certificate.CertificatePath, ["KeyPath"] = encryptedKey, ["Password"] = "secret" },
            "encrypted-pem-wrong-password" => new() { ["Path"] = certificate.CertificatePath, ["KeyPath"] = encryptedKey, ["Password"] = "wrong" },
            "pem-without-key" => new() { ["Path"] = certificate.CertificatePath },
            "key-of-another" => new() { ["Path"] = certificate.CertificatePath, ["KeyPath"] = other.KeyPath },
            "pfx-wrong-password" => new() { ["Path"] = pfx, ["Password"] = "wrong" },
            "pfx" => new() { ["Path"] = pfx, ["Password"] = "secret" },
            _ => new() { ["Path"] = certificate.CertificatePath, ["KeyPath"] = certificate.KeyPath },
        };
        var values = new Dictionary<string, string?> { ["ImagingProxy:Dicom:Listeners:dicom-tls:Port"] = "2762" };
        foreach (var (key, value) in tls)
        {
            values[$"ImagingProxy:Dicom:Listeners:dicom-tls:Tls:{key}"] = value;
        }

        var errors = ConfigurationValidator.Validate(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

        if (expected is null)
        {
            Assert.Empty(errors);
        }
        else
        {
            Assert.StartsWith(expected, Assert.Single(errors), StringComparison.Ordinal);
        }
    }

    [Fact]
    public void A_relative_endpoint_certificate_path_is_read_from_the_content_root_as_Kestrel_reads_it()
    {
        using var certificate = new ImagingProxy.Testing.TestCertificate();
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Viewers:Url"] = "https://127.0.0.1:8443",
            ["Kestrel:Endpoints:Viewers:Certificate:Path"] = Path.GetRelativePath(AppContext.BaseDirectory, certificate.CertificatePath),
            ["Kestrel:Endpoints:Viewers:Certificate:KeyPath"] = Path.GetRelativePath(AppContext.BaseDirectory, certificate.KeyPath),
            ["Kestrel:Endpoints:Xds:Url"] = "https://127.0.0.1:17035",
            ["Kestrel:Endpoints:Xds:Certificate:Path"] = "no-such.crt",
            ["Kestrel:Endpoints:Xds:Certificate:KeyPath"] = Path.GetRelativePath(AppContext.BaseDirectory, certificate.KeyPath),
        }).Build();

        var errors = ConfigurationValidator.Validate(config);

        Assert.Equal([$"Kestrel:Endpoints:Xds:Certificate:Path: file '{Path.Combine(AppContext.BaseDirectory, "no-such.crt")}' does not exist."], errors);
    }

    [Theory]
    [InlineData("SendingApplication", "LAB*")]
    [InlineData("SendingFacility", "")]
    [InlineData("ReceivingApplication", "RIS^X")]
    [InlineData("ReceivingFacility", "A|B")]
    [InlineData("MessageType", "ADT^A01^ADT_A01^X")]
    [InlineData("MessageType", "ORU*")]
    public void An_mllp_route_condition_the_route_table_cannot_read_is_rejected(string key, string value)
    {
        var config = MllpRoute(key, value);

        var error = Assert.Single(ConfigurationValidator.Validate(config));
        Assert.StartsWith($"ImagingProxy:Mllp:Routes:lab:{key}: ", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("MessageType", "ADT^A01^ADT_A01")]
    [InlineData("MessageType", "*^A08")]
    [InlineData("SendingApplication", "LAB")]
    [InlineData("ReceivingFacility", "*")]
    public void An_mllp_route_condition_the_route_table_reads_is_accepted(string key, string value)
        => Assert.Empty(ConfigurationValidator.Validate(MllpRoute(key, value)));

    private static IConfiguration MllpRoute(string key, string value)
        => new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ReverseProxy:Clusters:lis:Metadata:Protocol"] = "Mllp",
            ["ReverseProxy:Clusters:lis:Destinations:n1:Address"] = "tcp://10.0.0.21:2575",
            ["ImagingProxy:Mllp:Routes:lab:Cluster"] = "lis",
            [$"ImagingProxy:Mllp:Routes:lab:{key}"] = value,
        }).Build();

    [Fact]
    public void A_health_check_path_without_a_leading_slash_and_a_bad_health_address_are_rejected()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ReverseProxy:Clusters:web:Destinations:a:Address"] = "http://10.0.0.11:8042",
            ["ReverseProxy:Clusters:web:Destinations:a:Health"] = "10.0.0.11:8043",
            ["ReverseProxy:Clusters:web:Destinations:b:Address"] = "http://10.0.0.12:8042",
            ["ReverseProxy:Clusters:web:Destinations:b:Health"] = "http://10.0.0.12:8043/",
            ["ReverseProxy:Clusters:web:HealthCheck:Active:Path"] = "dicom-web/studies",
        }).Build();

        var errors = ConfigurationValidator.Validate(config);

        Assert.Equal(
            [
                "ReverseProxy:Clusters:web:Destinations:a:Health: '10.0.0.11:8043' is not an absolute http:// or https:// address.",
                "ReverseProxy:Clusters:web:HealthCheck:Active:Path: 'dicom-web/studies' must start with '/'.",
            ],
            errors.Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("tcp://127.0.0.1:104", true)]
    [InlineData("tcp://pacs.example.org:11112", true)]
    [InlineData("tcp://[::1]:2575", true)]
    [InlineData("tcp://127.0.0.1", false)]
    [InlineData("tcp://127.0.0.1:0", false)]
    [InlineData("http://127.0.0.1:104", false)]
    [InlineData("127.0.0.1:104", false)]
    [InlineData("tcp://127.0.0.1:104/path", false)]
    public void Tcp_destination_addresses_need_scheme_host_and_port(string address, bool valid)
        => Assert.Equal(valid, TcpAddress.TryParse(address, out _));

    [Fact]
    public void Start_up_fails_with_every_problem_in_the_message()
    {
        var directory = Directory.CreateTempSubdirectory("imagingproxy-bad-").FullName;
        var path = Path.Combine(directory, "bad.json");
        File.WriteAllText(path, """
            {
              "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
              "ReverseProxy": { "Clusters": { "c": { "Metadata": { "Protocol": "Telnet" }, "Destinations": { "d": { "Address": "" } } } } },
              "ImagingProxy": { "Dicom": { "Routes": { "r": { "CalledAeTitle": "PACS", "Cluster": "zzz" } } } }
            }
            """);
        var ex = Assert.Throws<InvalidConfigurationException>(() => ImagingProxy.Hosting.ImagingProxyApp.Build(["--config", path]));
        Assert.Equal(3, ex.Errors.Count);
        Assert.Contains("'Telnet' is not a protocol", ex.Message, StringComparison.Ordinal);
        Assert.Contains("Destinations:d:Address: required", ex.Message, StringComparison.Ordinal);
        Assert.Contains("unknown cluster 'zzz'", ex.Message, StringComparison.Ordinal);
        Directory.Delete(directory, true);
    }

    [Theory]
    [InlineData("MSH|^~\\&|IPX|IPX|RIS|RAD|20250101||ADT^A08|PROBE|P|2.5|||NE\rEVN|A08\r", "MSH-15 is NE")]
    [InlineData("MSH|^~\\&|IPX|IPX|RIS|RAD|20250101||ADT^A08\rEVN|A08\r", "not an HL7 message with a readable MSH, MSH-9 and MSH-10 (MissingControlId)")]
    [InlineData("PING", "not an HL7 message with a readable MSH, MSH-9 and MSH-10 (NoMsh)")]
    [InlineData("MSH|^~\\&|IPX|IPX|RIS|RAD|20250101||ADT^A08|PROBE|P|2.5|||AL\nEVN|A08\n", null)]
    public void A_message_probe_needs_a_message_a_node_answers(string probeMessage, string? error)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ReverseProxy:Clusters:ris:Metadata:Protocol"] = "Mllp",
            ["ReverseProxy:Clusters:ris:Metadata:HealthCheck.Mllp.Probe"] = "Message",
            ["ReverseProxy:Clusters:ris:Metadata:HealthCheck.Mllp.ProbeMessage"] = probeMessage,
            ["ReverseProxy:Clusters:ris:Destinations:ris1:Address"] = "tcp://127.0.0.1:2575",
            ["ImagingProxy:Mllp:Routes:r:Cluster"] = "ris",
        }).Build();

        var errors = ConfigurationValidator.Validate(config);

        if (error is null)
        {
            Assert.Empty(errors);
        }
        else
        {
            var only = Assert.Single(errors);
            Assert.StartsWith("ReverseProxy:Clusters:ris:Metadata:HealthCheck.Mllp.ProbeMessage: ", only, StringComparison.Ordinal);
            Assert.Contains(error, only, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void Protocol_metadata_is_checked()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ReverseProxy:Clusters:pacs:Metadata:Protocol"] = "Dicom",
            ["ReverseProxy:Clusters:pacs:Metadata:RewriteCalledAeTitle"] = "true",
            ["ReverseProxy:Clusters:pacs:Destinations:pacs1:Address"] = "tcp://127.0.0.1:104",
            ["ReverseProxy:Clusters:pacs:Destinations:pacs1:Metadata:Weight"] = "0",
            ["ReverseProxy:Clusters:ris:Metadata:Protocol"] = "Mllp",
            ["ReverseProxy:Clusters:ris:Metadata:HealthCheck.Mllp.Probe"] = "Message",
            ["ReverseProxy:Clusters:ris:Destinations:ris1:Address"] = "tcp://127.0.0.1:2575",
            ["ReverseProxy:Clusters:lab:Metadata:Protocol"] = "Mllp",
            ["ReverseProxy:Clusters:lab:Metadata:HealthCheck.Mllp.Probe"] = "Ping",
            ["ImagingProxy:Mllp:Routes:r:Order"] = "first",
            ["ImagingProxy:Mllp:Routes:r:Cluster"] = "ris",
        }).Build();

        var errors = ConfigurationValidator.Validate(config);

        Assert.Contains("ReverseProxy:Clusters:pacs:Destinations:pacs1:Metadata:AeTitle: required because the cluster rewrites the Called AE title.", errors);
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Clusters:pacs:Destinations:pacs1:Metadata:Weight", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("ReverseProxy:Clusters:ris:Metadata:HealthCheck.Mllp.ProbeMessage: required", StringComparison.Ordinal));
        Assert.Contains("ReverseProxy:Clusters:lab:Metadata:HealthCheck.Mllp.Probe: 'Ping' is unknown (Connect, Message).", errors);
        Assert.Contains("ImagingProxy:Mllp:Routes:r:Order: 'first' is not a whole number.", errors);
        Assert.Equal(5, errors.Count);
    }

    [Fact]
    public void Early_connect_is_a_boolean_of_dicom_listeners_only()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ImagingProxy:Dicom:Listeners:dicom:Port"] = "11112",
            ["ImagingProxy:Dicom:Listeners:dicom:EarlyConnect"] = "yes",
            ["ImagingProxy:Dicom:Listeners:dicom2:Port"] = "11113",
            ["ImagingProxy:Dicom:Listeners:dicom2:EarlyConnect"] = "true",
            ["ImagingProxy:Mllp:Listeners:hl7:Port"] = "2575",
            ["ImagingProxy:Mllp:Listeners:hl7:EarlyConnect"] = "true",
        }).Build();

        var errors = ConfigurationValidator.Validate(config);

        Assert.Contains("ImagingProxy:Dicom:Listeners:dicom:EarlyConnect: 'yes' is not true or false.", errors);
        Assert.Contains("ImagingProxy:Mllp:Listeners:hl7:EarlyConnect: only DICOM listeners connect early (an MLLP node is chosen per message).", errors);
        Assert.DoesNotContain(errors, e => e.Contains("dicom2", StringComparison.Ordinal));
    }

    [Fact]
    public void Listener_limits_are_positive_counts_each_of_its_own_protocol()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["ImagingProxy:Dicom:Listeners:dicom:Port"] = "11112",
            ["ImagingProxy:Dicom:Listeners:dicom:MaxAssociations"] = "0",
            ["ImagingProxy:Dicom:Listeners:dicom:MaxConnections"] = "10",
            ["ImagingProxy:Dicom:Listeners:dicom2:Port"] = "11113",
            ["ImagingProxy:Dicom:Listeners:dicom2:MaxAssociations"] = "200",
            ["ImagingProxy:Mllp:Listeners:hl7:Port"] = "2575",
            ["ImagingProxy:Mllp:Listeners:hl7:MaxConnections"] = "-3",
            ["ImagingProxy:Mllp:Listeners:hl7:MaxAssociations"] = "10",
            ["ImagingProxy:Mllp:Listeners:hl7b:Port"] = "2576",
            ["ImagingProxy:Mllp:Listeners:hl7b:MaxConnections"] = "20",
        }).Build();

        var errors = ConfigurationValidator.Validate(config);

        Assert.Contains("ImagingProxy:Dicom:Listeners:dicom:MaxAssociations: '0' must be a positive whole number.", errors);
        Assert.Contains(errors, e => e.StartsWith("ImagingProxy:Dicom:Listeners:dicom:MaxConnections: a DICOM listener's limit is MaxAssociations", StringComparison.Ordinal));
        Assert.Contains("ImagingProxy:Mllp:Listeners:hl7:MaxConnections: '-3' must be a positive whole number.", errors);
        Assert.Contains(errors, e => e.StartsWith("ImagingProxy:Mllp:Listeners:hl7:MaxAssociations: only DICOM listeners count associations", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.Contains("dicom2", StringComparison.Ordinal) || e.Contains("hl7b", StringComparison.Ordinal));
    }

    /// <summary>A valid configuration with an HTTP route, a DICOM and an MLLP listener and route each, plus <paramref name="extra"/>.</summary>
    private static IConfiguration Routed(Dictionary<string, string?> extra)
    {
        var values = new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Viewers:Url"] = "http://127.0.0.1:8080",
            ["ReverseProxy:Clusters:web:Destinations:a:Address"] = "http://10.0.0.11:8042",
            ["ReverseProxy:Clusters:pacs-dicom:Metadata:Protocol"] = "Dicom",
            ["ReverseProxy:Clusters:pacs-dicom:Destinations:a:Address"] = "tcp://10.0.0.11:104",
            ["ReverseProxy:Clusters:ris-hl7:Metadata:Protocol"] = "Mllp",
            ["ReverseProxy:Clusters:ris-hl7:Destinations:a:Address"] = "tcp://10.0.0.12:2575",
            ["ReverseProxy:Routes:r:ClusterId"] = "web",
            ["ReverseProxy:Routes:r:Match:Path"] = "/dicom-web/{**rest}",
            ["ImagingProxy:Dicom:Listeners:dicom:Port"] = "11112",
            ["ImagingProxy:Dicom:Routes:pacs:CalledAeTitle"] = "PACS",
            ["ImagingProxy:Dicom:Routes:pacs:Cluster"] = "pacs-dicom",
            ["ImagingProxy:Mllp:Listeners:hl7:Port"] = "2575",
            ["ImagingProxy:Mllp:Routes:all:Cluster"] = "ris-hl7",
        };
        foreach (var (key, value) in extra)
        {
            values[key] = value;
        }

        return new ConfigurationBuilder().AddInMemoryCollection(values).Build();
    }

    [Fact]
    public void The_routed_configuration_the_next_tests_change_is_valid()
        => Assert.Empty(ConfigurationValidator.Validate(Routed([])));

    // A single value where a list is expected has no children: the binder read it as no list, so "CallingAeTitles": "CT1"
    // let every calling AE title use the route, "Methods": "GET" every method, "Listeners": "dicom" every listener.
    [Theory]
    [InlineData("ImagingProxy:Dicom:Routes:pacs:CallingAeTitles", "CT1")]
    [InlineData("ImagingProxy:Dicom:Routes:pacs:Listeners", "dicom")]
    [InlineData("ImagingProxy:Mllp:Routes:all:Listeners", "hl7")]
    [InlineData("ImagingProxy:Telemetry:AeTitles", "CT1")]
    [InlineData("ImagingProxy:Telemetry:MessageTypes", "ADT^A01")]
    [InlineData("ReverseProxy:Routes:r:Match:Methods", "GET")]
    [InlineData("ReverseProxy:Routes:r:Match:Hosts", "pacs.hospital.local")]
    public void A_single_value_where_a_list_is_expected_is_rejected_not_read_as_no_list(string key, string value)
        => Assert.Equal(
            [$"{key}: '{value}' is a single value where a list is expected (in JSON [\"{value}\"]; as an environment variable or command-line key, {key}:0)."],
            ConfigurationValidator.Validate(Routed(new() { [key] = value })));

    // TimeSpan reads a bare number as days: "AckTimeout": 30, meant as seconds, waited 30 days for each ACK.
    [Theory]
    [InlineData("ImagingProxy:Mllp:AckTimeout", "30")]
    [InlineData("ImagingProxy:Dicom:ArtimTimeout", "30")]
    [InlineData("ImagingProxy:Dicom:ConnectTimeout", "5")]
    [InlineData("ImagingProxy:DrainTimeout", "300")]
    [InlineData("ReverseProxy:Clusters:web:HealthCheck:Active:Interval", "15")]
    public void A_time_given_as_a_bare_number_is_rejected_not_read_as_days(string key, string value)
        => Assert.Equal(
            [$"{key}: '{value}' is not a time span (hh:mm:ss, or d.hh:mm:ss); a bare number would be read as {value} days."],
            ConfigurationValidator.Validate(Routed(new() { [key] = value })));

    [Theory]
    [InlineData("00:00:30")]
    [InlineData("00:30")]
    [InlineData("1.00:00:00")]
    [InlineData("00:00:00.500")]
    public void A_time_with_hours_minutes_and_seconds_is_accepted(string value)
        => Assert.Empty(ConfigurationValidator.Validate(Routed(new() { ["ImagingProxy:Mllp:AckTimeout"] = value })));

    // A misspelt key was read by nobody: "CallingAeTitle" (for CallingAeTitles) left the route open to every calling AE
    // title, "MaxAttemps" kept the default, and start-up and reloads said nothing.
    [Theory]
    [InlineData("ImagingProxy:Dicom:Routes:pacs:CallingAeTitle:0", "ImagingProxy:Dicom:Routes:pacs:CallingAeTitle", "CalledAeTitle, CallingAeTitles, Cluster, Listeners")]
    [InlineData("ImagingProxy:Dicom:MaxAttemps", "ImagingProxy:Dicom:MaxAttemps", "ArtimTimeout, ConnectTimeout, IdleTimeout, Listeners, MaxAssociatePduLength, MaxAttempts, ProbeCallingAeTitle, Routes")]
    [InlineData("ImagingProxy:Mllp:Listeners:hl7:MaxAssociation", "ImagingProxy:Mllp:Listeners:hl7:MaxAssociation", "Address, EarlyConnect, MaxAssociations, MaxConnections, Port, Tls")]
    [InlineData("ImagingProxy:Telemtry:MaxAeTitles", "ImagingProxy:Telemtry", "Dicom, DrainTimeout, InlineScheduling, Mllp, SocketEngines, Telemetry, Xds")]
    [InlineData("ImagingProxy:Xds:RegistryClusters", "ImagingProxy:Xds:RegistryClusters", "RegistryCluster, RepositoryCluster")]
    public void An_unknown_key_in_the_ImagingProxy_section_is_rejected_naming_it(string key, string named, string known)
        => Assert.Equal(
            [$"{named}: unknown key (known here: {known})."],
            ConfigurationValidator.Validate(Routed(new() { [key] = "5" })));

    [Fact]
    public void Comment_keys_and_inline_scheduling_are_known_in_the_ImagingProxy_section()
        => Assert.Empty(ConfigurationValidator.Validate(Routed(new()
        {
            ["ImagingProxy://"] = "a comment, as the example configurations write them",
            ["ImagingProxy:Dicom:Routes:pacs://"] = "a comment",
            ["ImagingProxy:InlineScheduling"] = "false",
            ["ImagingProxy:Dicom:Routes:pacs:CallingAeTitles:0"] = "CT1",
            ["ImagingProxy:Telemetry:MaxAeTitles"] = "20",
        })));

    // YARP's reader stops at the first value it cannot convert and names no key ("ReverseProxy: The input string 'x' was
    // not in a correct format."): in a hospital's configuration the operator could not tell which value it was.
    [Theory]
    [InlineData("ReverseProxy:Routes:r:Order", "first")]
    [InlineData("ReverseProxy:Routes:r:MaxRequestBodySize", "big")]
    [InlineData("ReverseProxy:Routes:r:Match:Headers:0:Mode", "Sometimes")]
    [InlineData("ReverseProxy:Routes:r:Match:QueryParameters:0:IsCaseSensitive", "maybe")]
    [InlineData("ReverseProxy:Clusters:web:SessionAffinity:Enabled", "yes")]
    [InlineData("ReverseProxy:Clusters:web:SessionAffinity:Cookie:SameSite", "Loose")]
    [InlineData("ReverseProxy:Clusters:web:HttpClient:MaxConnectionsPerServer", "many")]
    [InlineData("ReverseProxy:Clusters:web:HttpClient:DangerousAcceptAnyServerCertificate", "no")]
    [InlineData("ReverseProxy:Clusters:web:HttpClient:SslProtocols:0", "Tls14")]
    [InlineData("ReverseProxy:Clusters:web:HttpRequest:Version", "x.y")]
    [InlineData("ReverseProxy:Clusters:web:HttpRequest:VersionPolicy", "Newest")]
    public void A_reverse_proxy_value_yarp_cannot_read_is_rejected_naming_its_key(string key, string value)
    {
        var errors = ConfigurationValidator.Validate(Routed(new()
        {
            [key] = value,
            ["ReverseProxy:Routes:r:Match:Headers:0:Name"] = "X-Site",
            ["ReverseProxy:Routes:r:Match:QueryParameters:0:Name"] = "site",
            ["ReverseProxy:Clusters:web:SessionAffinity:AffinityKeyName"] = ".Affinity",
        }));

        var error = Assert.Single(errors);
        Assert.StartsWith($"{key}: '{value}' ", error, StringComparison.Ordinal);
    }

    [Fact]
    public void Reverse_proxy_values_yarp_reads_are_accepted()
        => Assert.Empty(ConfigurationValidator.Validate(Routed(new()
        {
            ["ReverseProxy:Routes:r:Order"] = "-1",
            ["ReverseProxy:Routes:r:MaxRequestBodySize"] = "-1",
            ["ReverseProxy:Routes:r:Match:Headers:0:Name"] = "X-Site",
            ["ReverseProxy:Routes:r:Match:Headers:0:Mode"] = "exactheader",
            ["ReverseProxy:Routes:r:Match:Headers:0:IsCaseSensitive"] = "true",
            ["ReverseProxy:Clusters:web:SessionAffinity:Enabled"] = "True",
            ["ReverseProxy:Clusters:web:SessionAffinity:AffinityKeyName"] = ".Affinity",
            ["ReverseProxy:Clusters:web:SessionAffinity:Cookie:SameSite"] = "Strict",
            ["ReverseProxy:Clusters:web:HttpClient:MaxConnectionsPerServer"] = "100",
            ["ReverseProxy:Clusters:web:HttpClient:SslProtocols:0"] = "Tls13",
            ["ReverseProxy:Clusters:web:HttpRequest:Version"] = "2",
            ["ReverseProxy:Clusters:web:HttpRequest:VersionPolicy"] = "RequestVersionOrLower",
        })));
    // Kestrel reads these with Enum.TryParse and skips what it cannot read without a word: a misspelt
    // RequireCertificate let every client in without a certificate (checked with openssl s_client on a DICOM TLS
    // listener), a misspelt protocol or a single value where Kestrel reads a list left TLS 1.2 on.
    [Theory]
    [InlineData("Kestrel:EndpointDefaults:ClientCertificateMode", "RequireCertficate", "Kestrel:EndpointDefaults:ClientCertificateMode: 'RequireCertficate' is not one of ")]
    [InlineData("Kestrel:Endpoints:Viewers:ClientCertificateMode", "Require", "Kestrel:Endpoints:Viewers:ClientCertificateMode: 'Require' is not one of ")]
    [InlineData("Kestrel:EndpointDefaults:SslProtocols:0", "Tls1.3", "Kestrel:EndpointDefaults:SslProtocols:0: 'Tls1.3' is not one of ")]
    [InlineData("Kestrel:Endpoints:Viewers:SslProtocols:0", "TLSv1.3", "Kestrel:Endpoints:Viewers:SslProtocols:0: 'TLSv1.3' is not one of ")]
    [InlineData("Kestrel:EndpointDefaults:SslProtocols", "Tls13", "Kestrel:EndpointDefaults:SslProtocols: a list is expected")]
    public void A_tls_setting_kestrel_would_skip_is_rejected_naming_its_key(string key, string value, string expected)
    {
        var error = Assert.Single(ConfigurationValidator.Validate(Routed(new() { [key] = value })));
        Assert.StartsWith(expected, error, StringComparison.Ordinal);
    }

    [Fact]
    public void Tls_settings_kestrel_reads_are_accepted()
        => Assert.Empty(ConfigurationValidator.Validate(Routed(new()
        {
            ["Kestrel:EndpointDefaults:ClientCertificateMode"] = "requirecertificate",
            ["Kestrel:EndpointDefaults:SslProtocols:0"] = "Tls12",
            ["Kestrel:EndpointDefaults:SslProtocols:1"] = "Tls13",
            ["Kestrel:Endpoints:Viewers:ClientCertificateMode"] = "NoCertificate",
            ["Kestrel:Endpoints:Viewers:SslProtocols:0"] = "Tls13",
        })));
}
