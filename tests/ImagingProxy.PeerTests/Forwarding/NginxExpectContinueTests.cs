using System.Globalization;
using System.Net;
using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.Forwarding;

// Real peer: nginx (Debian) as the HTTP server behind the proxy, refusing bodies over its client_max_body_size.
public sealed class NginxExpectContinueTests : IAsyncLifetime
{
    private NginxBehindProxy? _peers;

    public async Task InitializeAsync()
    {
        // Both upload locations read the whole body (proxy_pass buffers it) and hand it to /sink.
        _peers = await NginxBehindProxy.StartAsync(
            ["""
            location = /sink { client_max_body_size 16m; return 200 "stored\n"; }
            location /limited/ { client_max_body_size 1m; proxy_pass http://127.0.0.1:$server_port/sink; }
            location / { client_max_body_size 16m; proxy_pass http://127.0.0.1:$server_port/sink; }
            """],
            nodes => (
                $$"""{ "web": { "Metadata": { "ExpectContinue": "Large" }, "Destinations": { "nginx": { "Address": "{{nodes[0].BaseAddress}}" } } } }""",
                """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" } } }"""));
    }

    public async Task DisposeAsync()
    {
        if (_peers is not null)
        {
            await _peers.DisposeAsync();
        }
    }

    [Fact(Timeout = 120_000)]
    public async Task An_upload_over_the_servers_limit_gets_its_413_without_the_body_being_sent()
    {
        using var client = _peers!.ViewersClient();

        using var refused = await client.PostAsync("/limited/studies", new ByteArrayContent(new byte[4 << 20]));
        using var small = await client.PostAsync("/limited/studies", new ByteArrayContent(new byte[512 << 10]));
        using var accepted = await client.PostAsync("/studies", new ByteArrayContent(new byte[4 << 20]));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, refused.StatusCode);
        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
        Assert.Equal("stored\n", await accepted.Content.ReadAsStringAsync());

        // nginx's $request_length and Expect header: the refused upload asked first and its body never reached nginx; the
        // small one went without asking; the accepted large one asked, got "100 Continue" and was sent whole.
        // nginx writes a request's line when it frees the request (for the refused one, when its connection closes).
        var lines = await _peers.Nodes[0].WaitForAccessLogAsync(lines => lines.Count(line => !line.Contains(" /sink ", StringComparison.Ordinal)) >= 3, TimeSpan.FromSeconds(30));
        var log = lines.Select(line => line.Split(' ')).Where(f => f[1] != "/sink").ToDictionary(f => $"{f[1]} {f[3]}");
        Assert.Equal("100-continue", log["/limited/studies 413"][5]);
        Assert.True(long.Parse(log["/limited/studies 413"][4], CultureInfo.InvariantCulture) < 4096);
        Assert.Equal("-", log["/limited/studies 200"][5]);
        Assert.True(long.Parse(log["/limited/studies 200"][4], CultureInfo.InvariantCulture) > 512 << 10);
        Assert.Equal("100-continue", log["/studies 200"][5]);
        Assert.True(long.Parse(log["/studies 200"][4], CultureInfo.InvariantCulture) > 4 << 20);
    }
}
