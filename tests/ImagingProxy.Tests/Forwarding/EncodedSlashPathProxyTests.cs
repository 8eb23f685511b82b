using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using ImagingProxy.Testing;

namespace ImagingProxy.Tests.Forwarding;

/// <summary>
/// Request lines sent raw over TLS (HttpClient would normalise them first), through routes that pass the path on or strip
/// a prefix: the server gets the client's encoded slash, and never a path outside the route it was routed by.
/// </summary>
public sealed class EncodedSlashPathProxyTests : IAsyncLifetime
{
    private readonly TestCertificate _certificate = new();
    private TestBackend _backend = null!;
    private TestProxy _proxy = null!;

    public async Task InitializeAsync()
    {
        _backend = await TestBackend.StartAsync("pacs");
        _proxy = await TestProxy.StartAsync(TestConfig.Build(
            _certificate,
            $$"""{ "web": {{TestConfig.Cluster("", _backend)}} }""",
            """
            {
              "dicomweb": { "ClusterId": "web", "Match": { "Path": "/dicom-web/{**rest}" } },
              "pacs1": { "ClusterId": "web", "Match": { "Path": "/pacs1/{**rest}" }, "Transforms": [ { "PathRemovePrefix": "/pacs1" } ] }
            }
            """));
    }

    public async Task DisposeAsync()
    {
        await _proxy.DisposeAsync();
        await _backend.DisposeAsync();
        _certificate.Dispose();
    }

    [Theory]
    // The backend records the path as its Kestrel decoded it: %2F stays %2F, and %252F becomes %2F only if it arrived as %252F.
    [InlineData("/dicom-web/studies/1.2%2F3?q=1", "GET /dicom-web/studies/1.2%2F3?q=1")]
    [InlineData("/pacs1/studies/1.2%2F3", "GET /studies/1.2%2F3")]
    public async Task An_encoded_slash_arrives_as_sent(string target, string received)
    {
        Assert.StartsWith("HTTP/1.1 200", await SendRawAsync(target), StringComparison.Ordinal);
        Assert.Contains(received, _backend.Requests);
    }

    [Theory]
    [InlineData("/dicom-web/a%2Fb\\..\\..\\admin?q=1")]
    [InlineData("/pacs1/a%2Fb\\..\\..\\admin")]
    [InlineData("/dicom-web/a%2Fb#x?q=1")]
    [InlineData("/dicom-web/a%2F..%2F..%2Fadmin")]
    public async Task A_crafted_path_never_leaves_the_route_it_was_routed_by(string target)
    {
        var status = await SendRawAsync(target);

        // Kestrel may refuse the line itself (400); whatever it lets through reaches the backend under the route's path.
        Assert.Matches("^HTTP/1.1 (200|400)", status);
        Assert.All(_backend.Requests, request => Assert.Matches("^GET /(dicom-web|a%2)", request));
        Assert.DoesNotContain(_backend.Requests, request => request.StartsWith("GET /admin", StringComparison.Ordinal));
    }

    /// <summary>Sends one GET with <paramref name="target"/> as the request-target, byte for byte; returns the status line.</summary>
    private async Task<string> SendRawAsync(string target)
    {
        var endpoint = _proxy.Url("Viewers", "https");
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(endpoint.Host, endpoint.Port);
        await using var tls = new SslStream(tcp.GetStream(), false, (_, certificate, _, _) =>
            certificate is not null && certificate.GetCertHashString(System.Security.Cryptography.HashAlgorithmName.SHA256) == _certificate.Thumbprint);
        await tls.AuthenticateAsClientAsync("localhost");
        await tls.WriteAsync(Encoding.ASCII.GetBytes($"GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"));
        using var reader = new StreamReader(tls, Encoding.ASCII);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        return await reader.ReadLineAsync(timeout.Token) ?? string.Empty;
    }
}
