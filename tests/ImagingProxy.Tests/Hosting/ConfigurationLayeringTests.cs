using ImagingProxy.Testing;

namespace ImagingProxy.Tests.Hosting;

/// <summary>
/// The host process reads its operator file from IMAGINGPROXY_CONFIG (or --config), then environment variables, then
/// command-line keys, later winning; observed through which backend a request reaches.
/// </summary>
public sealed class ConfigurationLayeringTests : IAsyncLifetime
{
    private readonly TestCertificate _certificate = new();
    private readonly List<TestBackend> _backends = [];

    public async Task InitializeAsync()
    {
        foreach (var name in new[] { "file", "environment", "command-line" })
        {
            _backends.Add(await TestBackend.StartAsync(name));
        }
    }

    public async Task DisposeAsync()
    {
        foreach (var backend in _backends)
        {
            await backend.DisposeAsync();
        }

        _certificate.Dispose();
    }

    private async Task<string> BackendReachedAsync(HostProcess host)
    {
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = new Uri($"https://127.0.0.1:{await host.PortAsync("Viewers")}/") };
        using var response = await client.GetAsync("/studies");
        return response.Headers.GetValues("X-Backend").Single();
    }

    [Fact]
    public async Task Environment_overrides_the_config_file_and_command_line_overrides_both()
    {
        var config = TestConfig.Build(_certificate, $$"""{ "web": {{TestConfig.Cluster("", _backends[0])}} }""", """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }""")
            .Replace("\"file\":", "\"node\":", StringComparison.Ordinal);
        var path = Path.Combine(_certificate.Directory, "operator.json");
        await File.WriteAllTextAsync(path, config);
        var environment = new Dictionary<string, string> { ["IMAGINGPROXY_CONFIG"] = path };

        using (var fileOnly = HostProcess.Start([], environment))
        {
            Assert.Equal("file", await BackendReachedAsync(fileOnly));
        }

        environment["ReverseProxy__Clusters__web__Destinations__node__Address"] = _backends[1].Url.ToString();
        using (var withEnvironment = HostProcess.Start([], environment))
        {
            Assert.Equal("environment", await BackendReachedAsync(withEnvironment));
        }

        using var withCommandLine = HostProcess.Start([$"--ReverseProxy:Clusters:web:Destinations:node:Address={_backends[2].Url}"], environment);
        Assert.Equal("command-line", await BackendReachedAsync(withCommandLine));
    }

    [Fact]
    public async Task A_dicom_only_site_turns_off_the_viewers_and_xds_endpoints_the_hosts_appsettings_defines()
    {
        // The host's appsettings.json defines Viewers (https on 443) and Xds; a layer cannot delete them, so they are
        // turned off: no certificate is needed and nothing is bound for them.
        var path = Path.Combine(_certificate.Directory, "dicom-only.json");
        await File.WriteAllTextAsync(path, """
            {
              "Kestrel": { "Endpoints": { "Viewers": { "Enabled": false }, "Xds": { "Enabled": "False" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
              "ReverseProxy": { "Clusters": { "pacs": { "Metadata": { "Protocol": "Dicom" }, "Destinations": { "n1": { "Address": "tcp://127.0.0.1:11112" } } } } },
              "ImagingProxy": { "Dicom": { "Listeners": { "dicom": { "Address": "127.0.0.1", "Port": 0 } }, "Routes": { "any": { "CalledAeTitle": "*", "Cluster": "pacs" } } } }
            }
            """);
        using var host = HostProcess.Start(["--config", path]);
        await host.PortAsync("dicom");
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{await host.PortAsync("Admin")}/") };
        var status = await admin.GetStringAsync("/status");

        Assert.Contains("\"dicom\"", status, StringComparison.Ordinal);
        Assert.DoesNotContain("Viewers", status, StringComparison.Ordinal);
        Assert.DoesNotContain("Listener Viewers", host.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Listener Xds", host.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_invalid_configuration_stops_the_host_with_exit_code_2_listing_every_problem()
    {
        var path = Path.Combine(_certificate.Directory, "bad.json");
        await File.WriteAllTextAsync(path, """
            {
              "Kestrel": { "Endpoints": { "Viewers": { "Url": "https://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
              "ImagingProxy": { "Mllp": { "Listeners": { "hl7": { "Port": 70000 } } }, "Xds": { "RegistryCluster": "nowhere" } }
            }
            """);
        using var host = HostProcess.Start(["--config", path]);
        Assert.Equal(2, await host.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("3 problem(s)", host.Output, StringComparison.Ordinal);
        Assert.Contains("Kestrel:Endpoints:Viewers:Certificate", host.Output, StringComparison.Ordinal);
        Assert.Contains("ImagingProxy:Mllp:Listeners:hl7:Port: '70000'", host.Output, StringComparison.Ordinal);
        Assert.Contains("ImagingProxy:Xds:RegistryCluster: unknown cluster 'nowhere'", host.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_config_file_that_is_not_valid_JSON_stops_the_host_with_exit_code_2_naming_the_file()
    {
        var path = Path.Combine(_certificate.Directory, "cut.json");
        var text = """
            {
              "Kestrel": { "Endpoints": { "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
              "ReverseProxy": { "Clusters": {
            """;
        await File.WriteAllTextAsync(path, text);
        using var host = HostProcess.Start(["--config", path]);
        Assert.Equal(2, await host.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("1 problem(s)", host.Output, StringComparison.Ordinal);
        Assert.Contains($"{path}: not valid JSON: {TestProxy.JsonParseError(text)}", host.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", host.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_host_appsettings_file_that_is_not_valid_JSON_stops_the_host_with_exit_code_2_naming_the_file()
    {
        // The host reads appsettings.{Environment}.json from its own directory: an environment of this test's own.
        var environment = $"Cut{Guid.NewGuid():N}";
        var path = Path.Combine(AppContext.BaseDirectory, $"appsettings.{environment}.json");
        const string text = """{ "Logging": { "LogLevel": """;
        await File.WriteAllTextAsync(path, text);
        try
        {
            using var host = HostProcess.Start([], new Dictionary<string, string> { ["DOTNET_ENVIRONMENT"] = environment });
            Assert.Equal(2, await host.WaitForExitAsync(TimeSpan.FromSeconds(60)));
            Assert.Contains("1 problem(s)", host.Output, StringComparison.Ordinal);
            Assert.Contains($"Failed to load configuration from file '{path}'. Not valid JSON: {TestProxy.JsonParseError(text)}", host.Output, StringComparison.Ordinal);
            Assert.DoesNotContain("Unhandled exception", host.Output, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task A_listener_port_in_use_at_start_up_stops_the_host_with_exit_code_3_naming_the_address()
    {
        using var taken = new System.Net.Sockets.TcpListener(System.Net.IPAddress.Loopback, 0);
        taken.Start();
        var port = ((System.Net.IPEndPoint)taken.LocalEndpoint).Port;
        var path = Path.Combine(_certificate.Directory, "busy.json");
        await File.WriteAllTextAsync(path, $$"""
            {
              "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
              "ImagingProxy": { "Dicom": { "Listeners": { "dicom": { "Address": "127.0.0.1", "Port": {{port}} } } } }
            }
            """);
        using var host = HostProcess.Start(["--config", path]);
        Assert.True(await host.WaitForExitAsync(TimeSpan.FromSeconds(60)) == 3, host.Output);
        Assert.Contains("ImagingProxy could not start: Failed to bind to address", host.Output, StringComparison.Ordinal);
        Assert.Contains($"127.0.0.1:{port}", host.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", host.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_listener_address_not_on_this_host_stops_the_host_with_exit_code_3_naming_the_listener_and_address()
    {
        var path = Path.Combine(_certificate.Directory, "elsewhere.json");
        await File.WriteAllTextAsync(path, """
            {
              "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
              "ImagingProxy": { "Mllp": { "Listeners": { "hl7": { "Address": "192.0.2.1", "Port": 2575 } } } }
            }
            """);
        using var host = HostProcess.Start(["--config", path]);
        Assert.True(await host.WaitForExitAsync(TimeSpan.FromSeconds(60)) == 3, host.Output);
        Assert.Contains("ImagingProxy could not start: Listener 'hl7' (Mllp) could not bind 192.0.2.1:2575: ", host.Output, StringComparison.Ordinal);
        Assert.Contains("(the address is not one of this host's)", host.Output, StringComparison.Ordinal);
        Assert.DoesNotContain("Unhandled exception", host.Output, StringComparison.Ordinal);
    }
}
