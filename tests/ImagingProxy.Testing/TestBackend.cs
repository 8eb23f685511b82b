using System.Collections.Concurrent;
using System.Net;
using System.Security.Cryptography;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Testing;

/// <summary>
/// An in-process HTTP server standing in for one PACS/XDS node: answers every path with its own name, echoes
/// what it received, streams large bodies on demand, and can be told to fail its health path.
/// </summary>
public sealed class TestBackend : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestBackend(string name, WebApplication app)
    {
        Name = name;
        _app = app;
    }

    public string Name { get; }

    public Uri Url { get; private set; } = null!;

    public ConcurrentQueue<string> Requests { get; } = new();

    /// <summary>Each request's target as it came on the wire (Kestrel's <c>RawTarget</c>: escapes as sent, before decoding).</summary>
    public ConcurrentQueue<string> RawTargets { get; } = new();

    public volatile bool Unhealthy;

    /// <summary>When not 0, every request but <c>/health</c> is answered with this status (body <c>status N from NAME</c>, header <c>X-Failed</c>).</summary>
    public volatile int FailWith;

    public static async Task<TestBackend> StartAsync(string name)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Configuration.Sources.Clear();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Listen(IPAddress.Loopback, 0);
            k.Limits.MaxRequestBodySize = null;
        });
        var app = builder.Build();
        var backend = new TestBackend(name, app);
        app.Run(backend.HandleAsync);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        backend.Url = new Uri(address.EndsWith('/') ? address : address + "/");
        return backend;
    }

    private async Task HandleAsync(HttpContext context)
    {
        var request = context.Request;
        Requests.Enqueue($"{request.Method} {request.Path}{request.QueryString}");
        RawTargets.Enqueue(context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestFeature>()?.RawTarget ?? string.Empty);
        context.Response.Headers["X-Backend"] = Name;
        if (request.Path == "/health")
        {
            context.Response.StatusCode = Unhealthy ? 503 : 200;
            await context.Response.WriteAsync(Unhealthy ? "down" : "up");
            return;
        }

        if (FailWith is not 0 and var failWith)
        {
            context.Response.StatusCode = failWith;
            context.Response.Headers["X-Failed"] = Name;
            await context.Response.WriteAsync($"status {failWith} from {Name}");
            return;
        }

        if (request.Path.StartsWithSegments("/status", out var rest) && int.TryParse(rest.Value?.Trim('/'), out var code))
        {
            context.Response.StatusCode = code;
            await context.Response.WriteAsync($"status {code} from {Name}");
            return;
        }

        if (request.Path == "/delay" && int.TryParse(request.Query["ms"], out var ms))
        {
            await Task.Delay(ms, context.RequestAborted);
            await context.Response.WriteAsync($"late from {Name}");
            return;
        }

        if (request.Path == "/big" && long.TryParse(request.Query["bytes"], out var size))
        {
            context.Response.ContentType = "application/octet-stream";
            context.Response.ContentLength = size;
            await WritePatternAsync(context.Response.Body, size, context.RequestAborted);
            return;
        }

        if (HttpMethods.IsPost(request.Method) || HttpMethods.IsPut(request.Method))
        {
            using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
            var buffer = new byte[81920];
            long total = 0;
            int read;
            while ((read = await request.Body.ReadAsync(buffer, context.RequestAborted)) > 0)
            {
                hash.AppendData(buffer, 0, read);
                total += read;
            }

            context.Response.Headers["X-Content-Type"] = request.ContentType ?? "";
            await context.Response.WriteAsync($"{Name} {request.Method} {request.Path} {total} {Convert.ToHexString(hash.GetHashAndReset())}");
            return;
        }

        context.Response.Headers["X-Traceparent-Seen"] = request.Headers["traceparent"].ToString();
        context.Response.Headers["X-Forwarded-For-Seen"] = request.Headers["X-Forwarded-For"].ToString();
        context.Response.Headers["X-Forwarded-Proto-Seen"] = request.Headers["X-Forwarded-Proto"].ToString();
        context.Response.Headers["Forwarded-Seen"] = request.Headers["Forwarded"].ToString();
        await context.Response.WriteAsync($"hello from {Name}: {request.Path}{request.QueryString}");
    }

    /// <summary>Writes a deterministic byte pattern (byte i = i mod 251) without holding it in memory.</summary>
    public static async Task WritePatternAsync(Stream stream, long size, CancellationToken cancellationToken)
    {
        var block = new byte[251 * 256];
        for (var i = 0; i < block.Length; i++)
        {
            block[i] = (byte)(i % 251);
        }

        long written = 0;
        while (written < size)
        {
            var count = (int)Math.Min(block.Length, size - written);
            await stream.WriteAsync(block.AsMemory(0, count), cancellationToken);
            written += count;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
