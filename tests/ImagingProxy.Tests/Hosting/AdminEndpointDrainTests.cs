using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.RegularExpressions;
using ImagingProxy.Hosting;
using ImagingProxy.Testing;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Tests.Hosting;

/// <summary>
/// The Admin endpoint runs on a Kestrel server of its own (SplitKestrelServer): stopping the host closes the data
/// listeners and drains their connections while /healthz, /readyz, /status and /metrics keep answering; the Admin
/// endpoint closes only after the host has stopped. In-process, with an HTTP request held open through the drain.
/// </summary>
public sealed class AdminEndpointDrainTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("imagingproxy-admin-drain-").FullName;
    private readonly HttpClient _viewers = new();
    private TestBackend _backend = null!;
    private WebApplication? _app;
    private Task? _stop;

    public async Task InitializeAsync() => _backend = await TestBackend.StartAsync("pacs1");

    public async Task DisposeAsync()
    {
        _viewers.Dispose();
        if (_app is not null)
        {
            await (_stop ?? _app.StopAsync());
            await _app.DisposeAsync();
        }

        await _backend.DisposeAsync();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact(Timeout = 60_000)]
    public async Task Admin_endpoint_answers_through_the_drain_and_closes_after_the_host_stopped()
    {
        var app = await StartAsync($$"""
            {
              "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
              "ReverseProxy": {
                "Routes": { "web": { "ClusterId": "web", "Match": { "Path": "/web/{**rest}" }, "Transforms": [ { "PathRemovePrefix": "/web" } ] } },
                "Clusters": { "web": { "Destinations": { "pacs1": { "Address": "{{_backend.Url}}" } } } }
              },
              "ImagingProxy": { "DrainTimeout": "00:00:50" }
            }
            """);
        Assert.IsType<SplitKestrelServer>(app.Services.GetRequiredService<IServer>());
        var viewersPort = Port(app, "Viewers");
        var adminPort = Port(app, "Admin");

        // A response the client does not read: the request stays in flight, so the drain cannot end before the test
        // closes the connection.
        using var inFlight = await _viewers.GetAsync($"http://127.0.0.1:{viewersPort}/web/big?bytes={1L << 40}", HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, inFlight.StatusCode);

        // An idle keep-alive connection: Kestrel closes it once the host is stopping and every data listener is closed.
        using var idle = await IdleConnectionAsync(viewersPort);

        _stop = app.StopAsync();
        Assert.Equal(0, await idle.ReceiveAsync(new byte[16]));

        await AssertAdminServesTheDrainAsync(adminPort);
        var refused = await Assert.ThrowsAsync<SocketException>(() => ConnectAsync(viewersPort));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
        await AssertAdminServesTheDrainAsync(adminPort);
        Assert.False(_stop.IsCompleted, "the host stopped while a request was in flight");

        // The client gives up (closes the connection): the drain is over, the host stops, and only then the Admin
        // endpoint closes.
        inFlight.Dispose();
        await _stop.WaitAsync(TimeSpan.FromSeconds(30));
        refused = await Assert.ThrowsAsync<SocketException>(() => ConnectAsync(adminPort));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);
    }

    [Fact]
    public async Task Admin_alone_is_served_without_starting_a_data_server()
    {
        var app = await StartAsync("""
            { "Kestrel": { "Endpoints": { "Admin": { "Url": "http://127.0.0.1:0" } } }, "ReverseProxy": { "Routes": {}, "Clusters": {} } }
            """, withoutDefaultEndpoints: true);
        using var admin = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{Port(app, "Admin")}/") };
        Assert.Equal("ready\n", await admin.GetStringAsync("/readyz"));

        // Kestrel started without an endpoint would have bound its default address.
        Assert.Empty(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses);
    }

    [Fact]
    public async Task Without_an_admin_endpoint_the_host_keeps_one_kestrel_server()
    {
        var app = await StartAsync("""
            { "Kestrel": { "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" } } }, "ReverseProxy": { "Routes": {}, "Clusters": {} } }
            """, withoutDefaultEndpoints: true);
        Assert.IsNotType<SplitKestrelServer>(app.Services.GetRequiredService<IServer>());
        using var viewers = new HttpClient();
        using var response = await viewers.GetAsync($"http://127.0.0.1:{Port(app, "Viewers")}/healthz");
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }

    private async Task<WebApplication> StartAsync(string json, bool withoutDefaultEndpoints = false)
    {
        var path = Path.Combine(_directory, "config.json");
        await File.WriteAllTextAsync(path, json);
        _app = ImagingProxyApp.Build(["--config", path], builder =>
        {
            builder.Logging.ClearProviders();
            if (withoutDefaultEndpoints)
            {
                // The host's appsettings.json declares Viewers, Xds and Admin; layering cannot remove an endpoint.
                foreach (var source in builder.Configuration.Sources.OfType<JsonConfigurationSource>().Where(s => s.Path?.StartsWith("appsettings", StringComparison.Ordinal) == true).ToList())
                {
                    builder.Configuration.Sources.Remove(source);
                }
            }
        });
        await _app.StartAsync();
        return _app;
    }

    private static int Port(WebApplication app, string listener)
    {
        Assert.True(app.Services.GetRequiredService<ListenerRegistry>().TryGet(listener, out var found), $"no listener {listener}");
        return ((IPEndPoint)found.EndPoint).Port;
    }

    private static async Task AssertAdminServesTheDrainAsync(int adminPort)
    {
        // No pooled connection: every request opens its own, as a kubelet probe does.
        using var admin = new HttpClient(new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.Zero })
        {
            BaseAddress = new Uri($"http://127.0.0.1:{adminPort}/"),
        };

        using var ready = await admin.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Equal("draining\n", await ready.Content.ReadAsStringAsync());
        Assert.Equal("ok\n", await admin.GetStringAsync("/healthz"));
        Assert.Contains("\"ready\": false", await admin.GetStringAsync("/status"), StringComparison.Ordinal);
        Assert.Contains("# TYPE", await admin.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }

    /// <summary>A connection that has had one request answered (404: no route) and is now idle.</summary>
    private static async Task<Socket> IdleConnectionAsync(int port)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        await socket.SendAsync(Encoding.ASCII.GetBytes("GET /no-route HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"));
        var received = new StringBuilder();
        var buffer = new byte[1024];

        // The whole response (ImagingProxy's 404 for a request no route matches, with its line of text): then the
        // connection is idle.
        while (!(received.ToString() is var text && text.IndexOf("\r\n\r\n", StringComparison.Ordinal) is > 0 and var end
            && Regex.Match(text, @"Content-Length: (\d+)", RegexOptions.IgnoreCase) is { Success: true } length
            && text.Length >= end + 4 + int.Parse(length.Groups[1].Value, CultureInfo.InvariantCulture)))
        {
            var count = await socket.ReceiveAsync(buffer);
            Assert.True(count > 0, "the connection closed before the response");
            received.Append(Encoding.ASCII.GetString(buffer, 0, count));
        }

        Assert.StartsWith("HTTP/1.1 404", received.ToString(), StringComparison.Ordinal);
        return socket;
    }

    private static async Task ConnectAsync(int port)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
    }
}
