using ImagingProxy.Forwarding;
using Microsoft.Extensions.Logging.Abstractions;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Forwarder;

namespace ImagingProxy.Tests.Forwarding;

public sealed class ProxyHttpClientFactoryTests
{
    private readonly ProxyHttpClientFactory _factory = new(NullLogger<ForwarderHttpClientFactory>.Instance);

    [Theory]
    [InlineData("00:00:05", "00:00:05", true)]
    [InlineData(null, null, true)]
    [InlineData("00:00:05", "00:00:10", false)]
    [InlineData(null, "00:00:05", false)]
    public void A_cluster_gets_a_new_client_when_its_ExpectContinueTimeout_changes(string? before, string? after, bool reused)
    {
        using var old = _factory.CreateClient(Context(null, null, before));

        using var next = _factory.CreateClient(Context(old, before, after));

        Assert.Equal(reused, ReferenceEquals(old, next));
    }

    [Theory]
    [InlineData("00:00:05", 5.0)]
    [InlineData("00:01:00", 60.0)]
    [InlineData(null, null)]
    public void The_timeout_is_read_from_the_metadata(string? text, double? seconds)
        => Assert.Equal(seconds is { } s ? TimeSpan.FromSeconds(s) : null, ProxyHttpClientFactory.Timeout(Metadata(text)));

    private static ForwarderHttpClientContext Context(HttpMessageInvoker? old, string? oldTimeout, string? newTimeout) => new()
    {
        ClusterId = "web",
        OldClient = old,
        OldConfig = HttpClientConfig.Empty,
        NewConfig = HttpClientConfig.Empty,
        OldMetadata = Metadata(oldTimeout),
        NewMetadata = Metadata(newTimeout),
    };

    private static Dictionary<string, string>? Metadata(string? timeout)
        => timeout is null ? null : new Dictionary<string, string> { ["ExpectContinueTimeout"] = timeout };
}
