using System.Text.Json;
using ImagingProxy.Testing;

namespace ImagingProxy.Tests.Hosting;

/// <summary>Kubernetes log pipelines want one JSON object per line: ASP.NET Core's JSON console formatter, switched on by configuration.</summary>
public sealed class JsonLoggingTests : IDisposable
{
    private readonly TestCertificate _certificate = new();

    public void Dispose() => _certificate.Dispose();

    [Fact]
    public async Task The_json_console_format_writes_structured_lines_with_stable_event_ids()
    {
        var path = Path.Combine(_certificate.Directory, "json.json");
        await File.WriteAllTextAsync(path, TestConfig.Build(_certificate, "{}"));
        using var host = HostProcess.Start(["--config", path, "--Logging:Console:FormatterName=json"]);
        await host.PortAsync("Admin");

        var bound = host.Output.Split('\n')
            .Where(l => l.StartsWith('{'))
            .Select(l => JsonDocument.Parse(l).RootElement)
            .First(e => e.GetProperty("Category").GetString() == "ImagingProxy.Hosting");
        Assert.Equal(1, bound.GetProperty("EventId").GetInt32());
        Assert.Equal("Information", bound.GetProperty("LogLevel").GetString());
        Assert.True(bound.GetProperty("State").TryGetProperty("Name", out _));
    }
}
