using ImagingProxy.Configuration;
using ImagingProxy.Hosting;
using ImagingProxy.Testing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.DependencyInjection;

namespace ImagingProxy.Tests.Configuration;

/// <summary>JSON configuration files keep their last parsed content, and report the error, when an edit does not parse.</summary>
public sealed class LastParsedJsonConfigurationTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("imagingproxy-json-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public void A_replaced_JSON_file_that_stops_parsing_keeps_its_last_parsed_data_and_reports_the_error_until_it_parses()
    {
        var path = Path.Combine(_directory, "appsettings.json");
        File.WriteAllText(path, """{ "Logging": { "LogLevel": { "Default": "Warning" } } }""");
        var builder = new ConfigurationBuilder().AddJsonFile(path, optional: true, reloadOnChange: false);
        LastParsedJsonConfigurationSource.ReplaceJsonFiles(builder);
        var root = builder.Build();
        var provider = Assert.IsAssignableFrom<IConfigurationLoadError>(Assert.Single(root.Providers));
        Assert.Null(provider.LoadError);

        const string cut = """{ "Logging": { "LogLevel": """;
        File.WriteAllText(path, cut);
        root.Reload();

        Assert.Equal("Warning", root["Logging:LogLevel:Default"]);
        Assert.Equal($"{path}: not valid JSON: {TestProxy.JsonParseError(cut)}", provider.LoadError);

        File.WriteAllText(path, """{ "Logging": { "LogLevel": { "Default": "Error" } } }""");
        root.Reload();

        Assert.Equal("Error", root["Logging:LogLevel:Default"]);
        Assert.Null(provider.LoadError);
    }

    [Fact]
    public async Task A_required_file_read_as_missing_stays_an_error_even_once_it_is_back_until_it_is_read_again()
    {
        var path = Path.Combine(_directory, "config.json");
        File.WriteAllText(path, """{ "ReverseProxy": { "Clusters": { "web": { } } } }""");
        var source = LastParsedJsonConfigurationSource.For(path, optional: false, reloadOnChange: true);
        source.ReloadDelay = 2000;
        var root = new ConfigurationBuilder().Add(source).Build();
        var provider = Assert.IsAssignableFrom<IConfigurationLoadError>(Assert.Single(root.Providers));

        // The watcher's load finds no file (.NET then reads it as empty); the file is back before the load is judged.
        var reloaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var registration = root.GetReloadToken().RegisterChangeCallback(static s => ((TaskCompletionSource)s!).TrySetResult(), reloaded);
        File.Delete(path);
        await reloaded.Task.WaitAsync(TimeSpan.FromSeconds(20));
        File.WriteAllText(path, """{ "ReverseProxy": { "Clusters": { "web": { } } } }""");

        Assert.Equal($"{path}: file not found (deleted, or being replaced); the configuration in force stays until the file is back.", provider.LoadError);
    }

    [Fact]
    public async Task The_host_reads_its_appsettings_files_and_the_config_file_through_the_last_parsed_provider()
    {
        var path = Path.Combine(_directory, "config.json");
        await File.WriteAllTextAsync(path, TestProxy.Config("{}", "{}"));
        await using var app = ImagingProxyApp.Build(["--config", path]);

        var json = ((IConfigurationRoot)app.Services.GetRequiredService<IConfiguration>()).Providers.OfType<JsonConfigurationProvider>().ToList();

        Assert.Contains(json, p => p.Source.Path == "appsettings.json");
        Assert.Contains(json, p => p.Source.Path == "config.json");
        Assert.All(json, p => Assert.IsType<LastParsedJsonConfigurationProvider>(p));
    }
}
