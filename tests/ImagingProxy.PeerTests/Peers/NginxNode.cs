namespace ImagingProxy.PeerTests.Peers;

/// <summary>
/// nginx (Debian <c>nginx</c>) as an HTTP server on a loopback port, in the foreground with its files in a temporary
/// directory; the caller gives the body of its one <c>server</c> block. Run as root, its worker stays root (<c>user
/// root</c>) so that it can write request bodies into the directory; as another user, nginx ignores the directive.
/// </summary>
public sealed class NginxNode : IAsyncDisposable
{
    private readonly TempDirectory _directory;
    private readonly PeerProcess _process;

    private NginxNode(TempDirectory directory, PeerProcess process, int port)
    {
        _directory = directory;
        _process = process;
        BaseAddress = new Uri($"http://127.0.0.1:{port}/");
    }

    public Uri BaseAddress { get; }

    /// <summary>nginx's access log lines so far (format: <c>$request $status $request_length $http_expect</c>).</summary>
    public string[] AccessLog => File.Exists(Path.Combine(_directory.Path, "access.log")) ? File.ReadAllLines(Path.Combine(_directory.Path, "access.log")) : [];

    /// <summary>Polls nginx's access log until <paramref name="done"/> holds for its lines; throws after <paramref name="timeout"/>.</summary>
    public async Task<string[]> WaitForAccessLogAsync(Func<string[], bool> done, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(done);
        var deadline = DateTime.UtcNow + timeout;
        while (true)
        {
            var lines = AccessLog;
            if (done(lines))
            {
                return lines;
            }

            if (DateTime.UtcNow > deadline)
            {
                throw new TimeoutException($"nginx's access log after {timeout.TotalSeconds} s: {string.Join(" | ", lines)}");
            }

            await Task.Delay(20);
        }
    }

    /// <summary>nginx's error log so far (for failure messages).</summary>
    public string ErrorLog => File.Exists(Path.Combine(_directory.Path, "error.log")) ? File.ReadAllText(Path.Combine(_directory.Path, "error.log")) : string.Empty;

    public static async Task<NginxNode> StartAsync(string server, CancellationToken cancellationToken = default)
    {
        var directory = TempDirectory.Create("imagingproxy-nginx-");
        try
        {
            var (process, port) = await PortRetry.StartAsync(
                FreePort.Next,
                port =>
                {
                    var config = Path.Combine(directory.Path, "nginx.conf");
                    File.WriteAllText(config, $$"""
                        daemon off;
                        user root;
                        worker_processes 1;
                        pid {{directory.Path}}/nginx.pid;
                        error_log {{directory.Path}}/error.log warn;
                        events { worker_connections 64; }
                        http {
                          log_format plain '$request $status $request_length $http_expect';
                          access_log {{directory.Path}}/access.log plain;
                          client_body_temp_path {{directory.Sub("body")}};
                          proxy_temp_path {{directory.Sub("proxy")}};
                          fastcgi_temp_path {{directory.Sub("fastcgi")}};
                          uwsgi_temp_path {{directory.Sub("uwsgi")}};
                          scgi_temp_path {{directory.Sub("scgi")}};
                          server {
                            listen 127.0.0.1:{{port}};
                            {{server}}
                          }
                        }
                        """);
                    return PeerProcess.Start(new PeerStartInfo("/usr/sbin/nginx") { Arguments = ["-p", directory.Path, "-c", config, "-e", Path.Combine(directory.Path, "error.log")], Name = "nginx" });
                },
                (process, port, token) => process.WaitForTcpPortAsync(port, TimeSpan.FromSeconds(20), token),
                cancellationToken: cancellationToken);
            return new NginxNode(directory, process, port);
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _process.DisposeAsync();
        _directory.Dispose();
    }
}
