using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using ImagingProxy.Testing;

namespace ImagingProxy.Tests.Forwarding;

/// <summary>
/// Request lines sent raw over TLS (HttpClient would normalise them first), through routes that pass the path on or strip
/// a prefix: the server gets the client's encoded slash, and never a path outside the route it was routed by; and the
/// client's query string as it was written, unless a route's query transform rebuilt it.
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
              "pacs1": { "ClusterId": "web", "Match": { "Path": "/pacs1/{**rest}" }, "Transforms": [ { "PathRemovePrefix": "/pacs1" } ] },
              "site": { "ClusterId": "web", "Match": { "Path": "/site/{**rest}" },
                "Transforms": [ { "PathRemovePrefix": "/site" }, { "QueryValueParameter": "site", "Append": "a" } ] }
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
    [InlineData("/dicom-web/studies/1.2%2F3?q=1", "/dicom-web/studies/1.2%2F3?q=1")]
    [InlineData("/dicom-web/studies/1.2%252F3", "/dicom-web/studies/1.2%252F3")]
    [InlineData("/pacs1/studies/1.2%2f3", "/studies/1.2%2f3")]
    public Task An_encoded_slash_arrives_as_sent(string target, string received) => AssertArrivesAsync(target, received);

    // What YARP alone sends for each (its escapes of %, \ and #): the raw path is not used for any of them.
    [Theory]
    [InlineData("/dicom-web/a%2Fb\\..\\..\\admin?q=1", "/dicom-web/a%252Fb%5C..%5C..%5Cadmin?q=1")]
    [InlineData("/pacs1/a%2Fb\\..\\..\\admin", "/a%252Fb%5C..%5C..%5Cadmin")]
    [InlineData("/dicom-web/a%2Fb#x?q=1", "/dicom-web/a%252Fb%23x?q=1")]
    [InlineData("/dicom-web/a%2F..%2F..%2Fadmin", "/dicom-web/a%252F..%252F..%252Fadmin")]
    [InlineData("/dicom-web/x%5C..%2F..%5Cadmin", "/dicom-web/x%5C..%252F..%5Cadmin")]
    [InlineData("/dicom-web/x%2F..;%2F..;%2Fadmin", "/dicom-web/x%252F..;%252F..;%252Fadmin")]
    public Task A_crafted_path_never_goes_to_the_server_raw(string target, string received) => AssertArrivesAsync(target, received);

    // QIDO-RS as viewers and scripts write it: the DICOM name separator ^ and the value separator \ raw (YARP alone sends
    // %5E and %5C, which Orthanc does not decode), escapes of any kind kept as they are.
    [Theory]
    [InlineData("/dicom-web/studies?PatientName=Doe^J*&limit=5", "/dicom-web/studies?PatientName=Doe^J*&limit=5")]
    [InlineData("/dicom-web/studies?StudyInstanceUID=1.2\\1.3&x=%41|{}`\"<>%&y=%zz", "/dicom-web/studies?StudyInstanceUID=1.2\\1.3&x=%41|{}`\"<>%&y=%zz")]
    [InlineData("/pacs1/studies/1.2%2F3/series?PatientName=Doe^J*", "/studies/1.2%2F3/series?PatientName=Doe^J*")]
    [InlineData("/pacs1/studies?PatientName=Doe%5EJ*", "/studies?PatientName=Doe%5EJ*")]
    public Task A_query_string_arrives_as_the_client_wrote_it(string target, string received) => AssertArrivesAsync(target, received);

    [Fact]
    public async Task A_query_string_a_route_transform_rebuilt_is_sent_as_yarp_builds_it()
    {
        Assert.StartsWith("HTTP/1.1 200", await SendRawAsync("/site/studies?PatientName=Doe^J*"), StringComparison.Ordinal);
        var received = Assert.Single(_backend.RawTargets);
        Assert.StartsWith("/studies?PatientName=Doe%5EJ", received, StringComparison.Ordinal);
        Assert.EndsWith("&site=a", received, StringComparison.Ordinal);
    }

    /// <summary>Sends <paramref name="target"/> and checks the backend got <paramref name="received"/> as its request-target.</summary>
    private async Task AssertArrivesAsync(string target, string received)
    {
        Assert.StartsWith("HTTP/1.1 200", await SendRawAsync(target), StringComparison.Ordinal);
        Assert.Equal(received, Assert.Single(_backend.RawTargets));
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
