using ImagingProxy.Configuration;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Tests.Configuration;

public class StartupBoundSettingsTests
{
    private static readonly Dictionary<string, string?> s_startup = new()
    {
        ["Kestrel:Endpoints:Viewers:Url"] = "https://0.0.0.0:443",
        ["Kestrel:Endpoints:Admin:Url"] = "http://0.0.0.0:9901",
        ["Kestrel:Limits:MaxConcurrentConnections"] = "1000",
        ["Kestrel:Limits:KeepAliveTimeout"] = "00:02:00",
        ["ImagingProxy:DrainTimeout"] = "00:05:00",
        ["ImagingProxy:Dicom:Listeners:dicom:Port"] = "104",
        ["ImagingProxy:Dicom:Listeners:dicom:MaxAssociations"] = "200",
        ["ImagingProxy:Dicom:Listeners:dicom-tls:Port"] = "2762",
        ["ImagingProxy:Dicom:Listeners:dicom-tls:Tls:Path"] = "/tls/a.pfx",
        ["ImagingProxy:Mllp:Listeners:hl7:Address"] = "0.0.0.0",
        ["ImagingProxy:Mllp:Listeners:hl7:Port"] = "2575",
        ["ImagingProxy:Mllp:MaxFrameSize"] = "4194304",
        ["ImagingProxy:Telemetry:MaxAeTitles"] = "50",
        ["ReverseProxy:Clusters:pacs:Destinations:n1:Address"] = "tcp://127.0.0.1:11112",
    };

    private static List<string> Changes(params (string Key, string? Value)[] edits)
    {
        var edited = new Dictionary<string, string?>(s_startup);
        foreach (var (key, value) in edits)
        {
            if (value is null)
            {
                foreach (var removed in edited.Keys.Where(k => k == key || k.StartsWith(key + ":", StringComparison.Ordinal)).ToList())
                {
                    edited.Remove(removed);
                }
            }
            else
            {
                edited[key] = value;
            }
        }

        return StartupBoundSettings.Changes(Build(s_startup), Build(edited));
    }

    private static IConfiguration Build(Dictionary<string, string?> values) => new ConfigurationBuilder().AddInMemoryCollection(values).Build();

    [Fact]
    public void Settings_read_per_connection_or_request_change_freely()
    {
        Assert.Empty(Changes(
            ("ImagingProxy:Dicom:Listeners:dicom:MaxAssociations", "50"),
            ("ImagingProxy:Dicom:Listeners:dicom-tls:Tls:Path", "/tls/b.pfx"),
            ("ImagingProxy:Mllp:MaxFrameSize", "1048576"),
            ("ImagingProxy:DrainTimeout", "0:05:00"),
            ("Kestrel:Endpoints:Viewers:Url", "https://0.0.0.0:8443"),
            ("Kestrel:Limits:KeepAliveTimeout", "00:01:00"),
            ("Kestrel:Limits:MaxRequestBodySize", "1000000"),
            ("ReverseProxy:Clusters:pacs:Destinations:n1:Address", "tcp://127.0.0.2:11112")));
    }

    [Theory]
    [InlineData("ImagingProxy:InlineScheduling", "true")]
    [InlineData("ImagingProxy:Dicom:Listeners:dicom:Address", "0.0.0.0")]
    [InlineData("ImagingProxy:Mllp:Listeners:hl7:Address", null)]
    [InlineData("Kestrel:Limits:MaxConcurrentConnections", "1000")]
    [InlineData("Kestrel:Limits:MaxConcurrentUpgradedConnections", "-1")]
    public void Stating_the_value_already_in_effect_is_no_change(string key, string? value)
    {
        Assert.Empty(Changes((key, value)));
        Assert.Empty(Changes(("ImagingProxy:DrainTimeout", null)));
    }

    [Theory]
    [InlineData("ImagingProxy:Dicom:Listeners:dicom2:Port", "11112", "ImagingProxy:Dicom:Listeners:dicom2: a new listener")]
    [InlineData("ImagingProxy:Mllp:Listeners:hl7:Port", "2576", "ImagingProxy:Mllp:Listeners:hl7:Port: read at start-up")]
    [InlineData("ImagingProxy:Mllp:Listeners:hl7:Address", "127.0.0.1", "ImagingProxy:Mllp:Listeners:hl7:Address: read at start-up")]
    [InlineData("ImagingProxy:Dicom:Listeners:dicom:Tls:Path", "/tls/a.pfx", "ImagingProxy:Dicom:Listeners:dicom:Tls: turning TLS on or off")]
    [InlineData("ImagingProxy:DrainTimeout", "00:10:00", "ImagingProxy:DrainTimeout: read at start-up; the change applies after a restart (running with '00:05:00')")]
    [InlineData("ImagingProxy:InlineScheduling", "false", "ImagingProxy:InlineScheduling: read at start-up")]
    [InlineData("ImagingProxy:SocketEngines", "4", "ImagingProxy:SocketEngines: read at start-up; the change applies after a restart (running with 'the runtime's default')")]
    [InlineData("ImagingProxy:Telemetry:MaxAeTitles", "100", "ImagingProxy:Telemetry: read at start-up")]
    [InlineData("Kestrel:Endpoints:Xds:Url", "http://0.0.0.0:17035", "Kestrel:Endpoints:Xds: a new endpoint")]
    [InlineData("Kestrel:EndpointDefaults:ClientCertificateMode", "RequireCertificate", "Kestrel:EndpointDefaults:ClientCertificateMode: read at start-up")]
    [InlineData("Kestrel:EndpointDefaults:SslProtocols:0", "Tls13", "Kestrel:EndpointDefaults:SslProtocols: read at start-up")]
    [InlineData("Kestrel:Limits:MaxConcurrentConnections", "500", "Kestrel:Limits:MaxConcurrentConnections: read at start-up; the change applies after a restart (running with '1000')")]
    [InlineData("Kestrel:Limits:MaxConcurrentConnections", "-1", "Kestrel:Limits:MaxConcurrentConnections: read at start-up; the change applies after a restart (running with '1000')")]
    [InlineData("Kestrel:Limits:MaxConcurrentUpgradedConnections", "100", "Kestrel:Limits:MaxConcurrentUpgradedConnections: read at start-up; the change applies after a restart (running with '-1')")]
    public void A_change_to_a_setting_read_at_start_up_is_named(string key, string value, string problem)
    {
        var changes = Changes((key, value));

        var change = Assert.Single(changes);
        Assert.StartsWith(problem, change, StringComparison.Ordinal);
        Assert.Contains("restart", change, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ImagingProxy:Dicom:Listeners:dicom-tls", "ImagingProxy:Dicom:Listeners:dicom-tls: removing a listener")]
    [InlineData("ImagingProxy:Dicom:Listeners:dicom-tls:Tls:Path", "ImagingProxy:Dicom:Listeners:dicom-tls:Tls: turning TLS on or off")]
    [InlineData("Kestrel:Endpoints:Admin", "Kestrel:Endpoints:Admin: removing an endpoint")]
    [InlineData("Kestrel:Limits:MaxConcurrentConnections", "Kestrel:Limits:MaxConcurrentConnections: read at start-up")]
    public void Removing_one_is_named_too(string key, string problem)
    {
        var changes = Changes((key, null));

        Assert.Contains(changes, c => c.StartsWith(problem, StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("MaxConcurrentConnections", "-1")]
    [InlineData("MaxConcurrentConnections", "")]
    [InlineData("MaxConcurrentUpgradedConnections", "-1")]
    public void A_connection_limit_stated_as_its_default_is_no_change(string key, string value)
    {
        var unset = Build([]);
        var stated = Build(new() { [$"Kestrel:Limits:{key}"] = value });

        Assert.Empty(StartupBoundSettings.Changes(unset, stated));
        Assert.Empty(StartupBoundSettings.Changes(stated, unset));
    }

    [Fact]
    public void A_change_from_an_unset_setting_names_the_default_it_runs_with()
    {
        var changes = StartupBoundSettings.Changes(Build([]), Build(new() { ["ImagingProxy:DrainTimeout"] = "00:10:00", ["ImagingProxy:InlineScheduling"] = "false" }));

        Assert.Equal(
            [
                "ImagingProxy:DrainTimeout: read at start-up; the change applies after a restart (running with '00:05:00').",
                "ImagingProxy:InlineScheduling: read at start-up; the change applies after a restart (running with 'true').",
            ],
            changes);
    }
}
