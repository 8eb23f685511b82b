using System.Net;
using System.Text.Json;
using System.Text.Json.Nodes;
using ImagingProxy.Configuration;
using ImagingProxy.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Testing;

/// <summary>ImagingProxy running in-process on real sockets (port 0), configured from a temporary --config file.</summary>
public sealed class TestProxy : IAsyncDisposable
{
    /// <summary>The top-level key <see cref="ReloadAsync"/> adds to the file it writes.</summary>
    public const string ReloadMarkerKey = "TestReloadMarker";

    private readonly WebApplication _app;
    private readonly string _directory;

    private TestProxy(WebApplication app, string directory, string configPath)
    {
        _app = app;
        _directory = directory;
        ConfigPath = configPath;
    }

    public string ConfigPath { get; }

    public IServiceProvider Services => _app.Services;

    public static Task<TestProxy> StartAsync(string json) => StartAsync(json, configure: null);

    /// <summary>Starts the proxy; <paramref name="configure"/> adds to the host builder (a fake log collector, say).</summary>
    public static async Task<TestProxy> StartAsync(string json, Action<WebApplicationBuilder>? configure)
    {
        var directory = Directory.CreateTempSubdirectory("imagingproxy-test-").FullName;
        var path = Path.Combine(directory, "config.json");
        await File.WriteAllTextAsync(path, json);
        var app = ImagingProxyApp.Build(["--config", path], builder =>
        {
            builder.Logging.ClearProviders();
            if (Environment.GetEnvironmentVariable("IMAGINGPROXY_TEST_LOG") == "1")
            {
                builder.Logging.AddSimpleConsole(o => o.TimestampFormat = "HH:mm:ss.fff ");
                builder.Logging.SetMinimumLevel(LogLevel.Debug);
            }

            configure?.Invoke(builder);
        });
        await app.StartAsync();
        return new TestProxy(app, directory, path);
    }

    /// <summary>The bound port of a listener (Kestrel endpoint, DICOM or MLLP listener) by name.</summary>
    public int Port(string listener)
    {
        var registry = Services.GetRequiredService<ListenerRegistry>();
        if (!registry.TryGet(listener, out var found))
        {
            throw new InvalidOperationException($"no listener {listener}");
        }

        return ((IPEndPoint)found.EndPoint).Port;
    }

    /// <summary>A config with only an Admin endpoint plus the given clusters and ImagingProxy section.</summary>
    public static string Config(string clusters, string imagingProxy)
        => $$"""
        {
          "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
          "ReverseProxy": { "Routes": {}, "Clusters": {{clusters}} },
          "ImagingProxy": {{imagingProxy}}
        }
        """;

    public Uri Url(string listener, string scheme = "http")
    {
        var registry = Services.GetRequiredService<ListenerRegistry>();
        if (!registry.TryGet(listener, out var found))
        {
            throw new InvalidOperationException($"no listener {listener}");
        }

        var port = ((IPEndPoint)found.EndPoint).Port;
        return new Uri($"{scheme}://127.0.0.1:{port}/");
    }

    /// <summary>
    /// Rewrites the --config file and waits for the proxy's attempt at this content. One write can reach the file watcher
    /// as more than one change (the truncation, then the bytes), so an attempt at the previous content can still come
    /// after this method has subscribed: the attempt waited for is the one that read <see cref="ReloadMarkerKey"/> with
    /// this call's value (a key outside the gated sections, which the proxy does not read).
    /// </summary>
    public async Task<IReadOnlyList<string>> ReloadAsync(string json)
    {
        var gate = Services.GetRequiredService<ConfigurationGate>();
        var raw = Services.GetRequiredService<IConfiguration>();
        var content = JsonNode.Parse(json)!.AsObject();
        var marker = Guid.NewGuid().ToString("N");
        content[ReloadMarkerKey] = marker;
        var attempted = new TaskCompletionSource<IReadOnlyList<string>>(TaskCreationOptions.RunContinuationsAsynchronously);

        // Raised on the thread that reloaded the file, right after the attempt: the raw configuration is what was tried.
        void OnAttempt(IReadOnlyList<string> errors)
        {
            if (raw[ReloadMarkerKey] == marker)
            {
                attempted.TrySetResult(errors);
            }
        }

        gate.ReloadAttempted += OnAttempt;
        try
        {
            // Written beside the file and moved over it: the watcher never sees it half-written (a half-written file
            // is an attempt of its own, rejected and counted, which made tests that count rejections fail now and then).
            var staged = ConfigPath + ".staged";
            await File.WriteAllTextAsync(staged, content.ToJsonString());
            File.Move(staged, ConfigPath, overwrite: true);
            return await attempted.Task.WaitAsync(TimeSpan.FromSeconds(20));
        }
        finally
        {
            gate.ReloadAttempted -= OnAttempt;
        }
    }

    /// <summary>
    /// Rewrites the --config file with <paramref name="text"/>, which is not valid JSON, and waits for the attempt that
    /// rejects it with the JSON parser's message for this text (an attempt at a half-written file reports another one).
    /// </summary>
    public async Task<IReadOnlyList<string>> WriteInvalidJsonAsync(string text)
    {
        var gate = Services.GetRequiredService<ConfigurationGate>();
        var expected = $"{ConfigPath}: not valid JSON: {JsonParseError(text)}";
        var attempted = new TaskCompletionSource<IReadOnlyList<string>>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnAttempt(IReadOnlyList<string> errors)
        {
            if (errors.Contains(expected))
            {
                attempted.TrySetResult(errors);
            }
        }

        gate.ReloadAttempted += OnAttempt;
        try
        {
            await File.WriteAllTextAsync(ConfigPath, text);
            return await attempted.Task.WaitAsync(TimeSpan.FromSeconds(20));
        }
        finally
        {
            gate.ReloadAttempted -= OnAttempt;
        }
    }

    /// <summary>The message the configuration's JSON parser (comments skipped, trailing commas allowed) gives for <paramref name="text"/>.</summary>
    public static string JsonParseError(string text)
    {
        try
        {
            using var document = JsonDocument.Parse(text, new JsonDocumentOptions { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true });
        }
        catch (JsonException ex)
        {
            return ex.Message;
        }

        throw new ArgumentException("the text is valid JSON", nameof(text));
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
        try
        {
            Directory.Delete(_directory, recursive: true);
        }
        catch (IOException)
        {
        }
    }
}
