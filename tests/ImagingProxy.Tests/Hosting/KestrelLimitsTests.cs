using System.Net;
using ImagingProxy.Configuration;
using ImagingProxy.Testing;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Tests.Hosting;

/// <summary><c>Kestrel:Limits</c> from configuration reaches both Kestrel servers, is validated, and follows reloads.</summary>
public sealed class KestrelLimitsTests
{
    private static string Config(string limits) => $$"""
        {
          "Kestrel": { "Limits": {{limits}}, "Endpoints": { "Viewers": { "Url": "http://127.0.0.1:0" }, "Xds": { "Url": "http://127.0.0.1:0" }, "Admin": { "Url": "http://127.0.0.1:0" } } },
          "ReverseProxy": { "Routes": {}, "Clusters": {} }
        }
        """;

    private static async Task<HttpStatusCode> GetWithHeadersAsync(Uri baseAddress, string path, int extraHeaders)
    {
        using var client = new HttpClient { BaseAddress = baseAddress };
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        for (var i = 0; i < extraHeaders; i++)
        {
            request.Headers.Add($"X-Extra-{i}", "1");
        }

        using var response = await client.SendAsync(request);
        return response.StatusCode;
    }

    [Fact]
    public async Task A_configured_header_count_limit_answers_431_on_every_endpoint_and_a_reload_raises_it()
    {
        await using var proxy = await TestProxy.StartAsync(Config("""{ "MaxRequestHeaderCount": 5 }"""));
        Assert.Equal(HttpStatusCode.OK, await GetWithHeadersAsync(proxy.Url("Admin"), "/healthz", 1));
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, await GetWithHeadersAsync(proxy.Url("Admin"), "/healthz", 10));
        Assert.Equal(HttpStatusCode.NotFound, await GetWithHeadersAsync(proxy.Url("Viewers"), "/nothing", 1));
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, await GetWithHeadersAsync(proxy.Url("Viewers"), "/nothing", 10));

        Assert.Empty(await proxy.ReloadAsync(Config("""{ "MaxRequestHeaderCount": 50 }""")));
        Assert.Equal(HttpStatusCode.OK, await GetWithHeadersAsync(proxy.Url("Admin"), "/healthz", 10));
        Assert.Equal(HttpStatusCode.NotFound, await GetWithHeadersAsync(proxy.Url("Viewers"), "/nothing", 10));
    }

    [Fact]
    public async Task An_invalid_limit_in_a_reload_is_rejected_and_the_last_good_limits_keep_serving()
    {
        await using var proxy = await TestProxy.StartAsync(Config("""{ "MaxRequestHeaderCount": 5 }"""));
        var errors = await proxy.ReloadAsync(Config("""{ "MaxRequestHeaderCount": "many" }"""));
        Assert.Contains(errors, e => e.StartsWith("Kestrel:Limits:MaxRequestHeaderCount: 'many'", StringComparison.Ordinal));
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, await GetWithHeadersAsync(proxy.Url("Viewers"), "/nothing", 10));
    }

    [Fact]
    public void Every_bad_limit_is_reported_with_its_key()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Kestrel:Limits:MaxRequestHeaderCount"] = "0",
            ["Kestrel:Limits:KeepAliveTimeout"] = "soon",
            ["Kestrel:Limits:MaxConcurrentConnections"] = "-5",
            ["Kestrel:Limits:MaxRequestBodySzie"] = "10",
            ["Kestrel:Limits:Http2:MaxFrameSize"] = "12",
            ["Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond"] = "fast",
            ["Kestrel:Limits:MinResponseDataRate:BytesPerSecond"] = "100",
            ["Kestrel:Limits:MinResponseDataRate:GracePeriod"] = "-00:00:01",
        }).Build();

        var errors = ConfigurationValidator.Validate(config);

        foreach (var key in new[] { "MaxRequestHeaderCount", "KeepAliveTimeout", "MaxConcurrentConnections", "Http2:MaxFrameSize", "MinRequestBodyDataRate:BytesPerSecond", "MinResponseDataRate:GracePeriod" })
        {
            Assert.Contains(errors, e => e.StartsWith($"Kestrel:Limits:{key}:", StringComparison.Ordinal));
        }

        Assert.Contains(errors, e => e.StartsWith("Kestrel:Limits:MaxRequestBodySzie: unknown limit (known: KeepAliveTimeout,", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("KeepAliveTimeout")]
    [InlineData("RequestHeadersTimeout")]
    [InlineData("Http2:KeepAlivePingDelay")]
    [InlineData("Http2:KeepAlivePingTimeout")]
    [InlineData("MinRequestBodyDataRate:GracePeriod")]
    public void A_time_limit_given_as_a_bare_number_is_an_error_not_that_many_days(string key)
    {
        // "KeepAliveTimeout": 130, meant as seconds, is 130 days to TimeSpan.Parse: rejected as every other time setting is.
        var values = new Dictionary<string, string?> { [$"Kestrel:Limits:{key}"] = "130" };
        if (key.StartsWith("MinRequestBodyDataRate", StringComparison.Ordinal))
        {
            values["Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond"] = "240";
        }

        var errors = ConfigurationValidator.Validate(new ConfigurationBuilder().AddInMemoryCollection(values).Build());

        Assert.Contains(errors, e => e.StartsWith($"Kestrel:Limits:{key}: '130'", StringComparison.Ordinal) && e.Contains("130 days", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_request_buffer_Kestrel_would_refuse_ends_the_start_as_a_configuration_problem()
    {
        var ex = await Assert.ThrowsAsync<InvalidConfigurationException>(() => TestProxy.StartAsync(Config("""{ "MaxRequestBufferSize": 4096 }""")));

        Assert.Contains(ex.Errors, e => e.StartsWith("Kestrel:Limits:MaxRequestBufferSize: 4096 is smaller than MaxRequestLineSize", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData("4096", null, null, "MaxRequestLineSize (8192)|MaxRequestHeadersTotalSize (32768)")]
    [InlineData("65536", null, "131072", "MaxRequestHeadersTotalSize (131072)")]
    [InlineData("4096", "2048", "4096", "")]
    [InlineData("-1", null, "131072", "")]
    public void A_request_buffer_smaller_than_a_request_line_or_the_headers_is_rejected_as_Kestrel_would_at_start(string buffer, string? line, string? headers, string expected)
    {
        var values = new Dictionary<string, string?> { ["Kestrel:Limits:MaxRequestBufferSize"] = buffer };
        if (line is not null)
        {
            values["Kestrel:Limits:MaxRequestLineSize"] = line;
        }

        if (headers is not null)
        {
            values["Kestrel:Limits:MaxRequestHeadersTotalSize"] = headers;
        }

        var config = new ConfigurationBuilder().AddInMemoryCollection(values).Build();

        var errors = ConfigurationValidator.Validate(config);

        var names = expected.Split('|', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(names.Length, errors.Count);
        foreach (var name in names)
        {
            Assert.Contains(errors, e => e.StartsWith("Kestrel:Limits:MaxRequestBufferSize: ", StringComparison.Ordinal) && e.Contains(name, StringComparison.Ordinal));
        }
    }

    [Fact]
    public void Applying_sets_configured_values_and_a_removed_key_returns_to_the_default()
    {
        var limits = new KestrelServerLimits();
        KestrelLimitsConfig.Apply(Section(new()
        {
            ["Kestrel:Limits:MaxRequestBodySize"] = "1000",
            ["Kestrel:Limits:MaxConcurrentConnections"] = "200",
            ["Kestrel:Limits:KeepAliveTimeout"] = "00:00:30",
            ["Kestrel:Limits:Http2:MaxStreamsPerConnection"] = "10",
            ["Kestrel:Limits:MinRequestBodyDataRate:BytesPerSecond"] = "0",
            ["Kestrel:Limits:MinResponseDataRate:BytesPerSecond"] = "50",
            ["Kestrel:Limits:MinResponseDataRate:GracePeriod"] = "00:00:10",
        }), limits);
        Assert.Equal(1000, limits.MaxRequestBodySize);
        Assert.Equal(200, limits.MaxConcurrentConnections);
        Assert.Equal(TimeSpan.FromSeconds(30), limits.KeepAliveTimeout);
        Assert.Equal(10, limits.Http2.MaxStreamsPerConnection);
        Assert.Null(limits.MinRequestBodyDataRate);
        Assert.Equal(50, limits.MinResponseDataRate!.BytesPerSecond);
        Assert.Equal(TimeSpan.FromSeconds(10), limits.MinResponseDataRate.GracePeriod);

        KestrelLimitsConfig.Apply(Section(new() { ["Kestrel:Limits:MaxConcurrentConnections"] = "-1" }), limits);
        var defaults = new KestrelServerLimits();
        Assert.Null(limits.MaxRequestBodySize);
        Assert.Null(limits.MaxConcurrentConnections);
        Assert.Equal(defaults.KeepAliveTimeout, limits.KeepAliveTimeout);
        Assert.Equal(defaults.Http2.MaxStreamsPerConnection, limits.Http2.MaxStreamsPerConnection);
        Assert.Equal(defaults.MinRequestBodyDataRate!.BytesPerSecond, limits.MinRequestBodyDataRate!.BytesPerSecond);
    }

    private static IConfigurationSection Section(Dictionary<string, string?> values)
        => new ConfigurationBuilder().AddInMemoryCollection(values).Build().GetSection(KestrelLimitsConfig.SectionPath);
}
