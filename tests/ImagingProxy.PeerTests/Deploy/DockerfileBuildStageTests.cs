using System.Net;
using System.Runtime.Versioning;
using System.Text.Json;
using System.Text.Json.Nodes;
using ImagingProxy.Configuration;
using ImagingProxy.Testing;
using Xunit.Abstractions;

namespace ImagingProxy.PeerTests.Deploy;

/// <summary>
/// deploy/Dockerfile without Docker (no engine on the development machines or in CI): <see cref="DockerfileBuild"/>
/// follows its build stage (COPY through the .dockerignore, RUN dotnet restore/publish with this machine's SDK) and
/// its runtime stage (COPY --from, WORKDIR, ENV, USER, ENTRYPOINT); these tests then check what that produced and
/// start it as the image would. A file the build needs that the Dockerfile does not COPY, or that the .dockerignore
/// leaves out, fails here. Not covered: the base images themselves, layer caching, the registry's packages.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class DockerfileBuildStageTests(DockerfileBuild build, ITestOutputHelper output) : IClassFixture<DockerfileBuild>, IAsyncLifetime
{
    /// <summary>The uid (and gid) of the aspnet image's `app` user, which $APP_UID names.</summary>
    private const int AppUid = 1654;
    private const string AppUidVariable = "$APP_UID";
    private static readonly TimeSpan s_startTimeout = TimeSpan.FromSeconds(60);
    private static readonly TimeSpan s_exitTimeout = TimeSpan.FromSeconds(30);

    private readonly TestCertificate _certificate = new();
    private ImageProcess? _process;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_process is not null)
        {
            await _process.DisposeAsync();
        }

        _certificate.Dispose();
    }

    [Fact]
    public void Build_stage_publishes_the_host_framework_dependent_from_only_what_the_Dockerfile_copies()
    {
        foreach (var step in build.Steps)
        {
            output.WriteLine(step);
        }

        output.WriteLine($"build stage: {build.BuildStageDuration.TotalSeconds:F1} s; context filter {build.DockerignorePath ?? "(none)"}");

        var app = build.Runtime.HostWorkingDirectory;
        Assert.True(File.Exists(Path.Combine(app, "ImagingProxy.Host.dll")), $"no ImagingProxy.Host.dll in the runtime stage's WORKDIR {build.Runtime.WorkingDirectory}");
        Assert.True(File.Exists(Path.Combine(app, "ImagingProxy.Host.runtimeconfig.json")), "no runtimeconfig.json: not a framework-dependent publish");
        Assert.True(File.Exists(Path.Combine(app, "appsettings.json")), "appsettings.json (the default endpoints) is not published");
        Assert.False(File.Exists(Path.Combine(app, "ImagingProxy.Host")), "an apphost was published although the ENTRYPOINT runs `dotnet ImagingProxy.Host.dll`");

        // The context holds only what the .dockerignore lets through: no bin/ or obj/ of this working tree.
        var copied = Directory.EnumerateFileSystemEntries(Path.Combine(build.Build.Root, "src"), "*", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(build.Build.Root, p));
        Assert.DoesNotContain(copied, p => p.Contains("/bin/Debug", StringComparison.Ordinal) || p.Contains("/obj/Debug", StringComparison.Ordinal));
    }

    [Fact]
    public void Application_files_are_not_writable_by_the_app_user()
    {
        // COPY --from=build --chown=root:root: the process cannot change its own code.
        const UnixFileMode Writable = UnixFileMode.GroupWrite | UnixFileMode.OtherWrite;
        var app = build.Runtime.HostWorkingDirectory;
        var writable = Directory.EnumerateFileSystemEntries(app, "*", SearchOption.AllDirectories).Prepend(app)
            .Where(p => (File.GetUnixFileMode(p) & Writable) != 0)
            .ToList();
        Assert.True(writable.Count == 0, "writable by group or others: " + string.Join(", ", writable));
    }

    [Fact(Timeout = 180_000)]
    public async Task Published_app_starts_as_the_image_user_with_the_image_environment_binds_every_listener_serves_healthz_and_exits_0_on_SIGTERM()
    {
        Assert.Equal(["dotnet", "ImagingProxy.Host.dll"], build.Entrypoint);
        Assert.True(build.User == AppUidVariable, $"USER is '{build.User}', expected {AppUidVariable} (the aspnet image's app user, uid {AppUid})");
        Assert.Equal(AppUid.ToString(System.Globalization.CultureInfo.InvariantCulture), build.ImageEnvironment["APP_UID"]);
        var environment = build.ImageEnvironment;
        Assert.Equal("", environment["ASPNETCORE_HTTP_PORTS"]);
        Assert.Equal("0", environment["DOTNET_EnableDiagnostics"]);
        Assert.True(environment.TryGetValue(ProxyDefaults.ConfigEnvironmentVariable, out var configPath), $"the runtime stage sets no {ProxyDefaults.ConfigEnvironmentVariable}");

        // The operator's file and the TLS Secret where the image expects them, under the runtime stage's root.
        var hostConfigPath = build.Runtime.Map(configPath);
        var tls = build.Runtime.Map("/etc/imagingproxy/tls");
        var home = build.Runtime.Map("/home/app");
        Directory.CreateDirectory(Path.GetDirectoryName(hostConfigPath)!);
        Directory.CreateDirectory(tls);
        Directory.CreateDirectory(home);
        File.Copy(_certificate.CertificatePath, Path.Combine(tls, "tls.crt"), overwrite: true);
        File.Copy(_certificate.KeyPath, Path.Combine(tls, "tls.key"), overwrite: true);
        var configuration = Configuration(Path.Combine(tls, "tls.crt"), Path.Combine(tls, "tls.key"));
        await File.WriteAllTextAsync(hostConfigPath, configuration.ToJsonString());
        foreach (var file in new[] { hostConfigPath, Path.Combine(tls, "tls.crt"), Path.Combine(tls, "tls.key") })
        {
            File.SetUnixFileMode(file, UnixFileMode.UserRead | UnixFileMode.GroupRead | UnixFileMode.OtherRead);
        }

        var processEnvironment = environment.ToDictionary();
        processEnvironment[ProxyDefaults.ConfigEnvironmentVariable] = hostConfigPath;
        processEnvironment["HOME"] = home;

        int? uid = null;
        if (Environment.IsPrivilegedProcess)
        {
            Assert.True(File.Exists(ImageProcess.Setpriv), $"{ImageProcess.Setpriv} (util-linux) is needed to run as uid {AppUid}");
            uid = AppUid;
        }
        else
        {
            output.WriteLine($"not root: the app runs as this user, not as uid {AppUid} (USER {AppUidVariable}); everything else is checked");
        }

        _process = ImageProcess.Start(build.Entrypoint, build.Runtime.HostWorkingDirectory, processEnvironment, uid);
        var listeners = ListenerNames(configuration);
        var ports = await _process.WaitForListenersAsync(listeners, s_startTimeout);
        output.WriteLine($"pid {_process.Id} as uid {(uid?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "(this user)")}: " + string.Join(", ", listeners.Select(l => $"{l} on {ports[l]}")));
        if (uid is not null)
        {
            Assert.Equal(AppUid, ProcessUid(_process.Id));
        }

        // Only the configured listeners: ASPNETCORE_HTTP_PORTS= keeps the base image's :8080 away.
        Assert.Equal(listeners.Order(), ports.Keys.Order());

        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        using (var healthz = await client.GetAsync(new Uri($"http://127.0.0.1:{ports[EndpointNames.Admin]}/healthz")))
        {
            Assert.Equal(HttpStatusCode.OK, healthz.StatusCode);
        }

        await _process.TerminateAsync();
        var exitCode = await _process.WaitForExitAsync(s_exitTimeout);
        output.WriteLine(_process.Output);
        Assert.True(exitCode == 0, $"exit code {exitCode} after SIGTERM:\n{_process.Output}");
    }

    /// <summary>Every kind of listener on loopback port 0, backends on loopback that are never dialled (no probes, no traffic).</summary>
    private static JsonObject Configuration(string certificatePath, string keyPath) => JsonNode.Parse($$"""
        {
          "Kestrel": { "Endpoints": {
            "Viewers": { "Url": "https://127.0.0.1:0", "Certificate": { "Path": {{JsonSerializer.Serialize(certificatePath)}}, "KeyPath": {{JsonSerializer.Serialize(keyPath)}} } },
            "Xds": { "Url": "http://127.0.0.1:0" },
            "Admin": { "Url": "http://127.0.0.1:0" } } },
          "ReverseProxy": { "Clusters": {
            "pacs": { "Metadata": { "Protocol": "Dicom" }, "Destinations": { "pacs1": { "Address": "tcp://127.0.0.1:104", "Metadata": { "AeTitle": "PACS1" } } } },
            "ris": { "Metadata": { "Protocol": "Mllp" }, "Destinations": { "ris1": { "Address": "tcp://127.0.0.1:2575" } } } } },
          "ImagingProxy": {
            "Dicom": { "Listeners": { "dicom": { "Address": "127.0.0.1", "Port": 0 } }, "Routes": { "pacs": { "CalledAeTitle": "PACS", "Cluster": "pacs" } } },
            "Mllp": { "Listeners": { "hl7": { "Address": "127.0.0.1", "Port": 0 } }, "Routes": { "all": { "Cluster": "ris" } } }
          }
        }
        """)!.AsObject();

    private static List<string> ListenerNames(JsonObject configuration)
        => [.. configuration["Kestrel"]!["Endpoints"]!.AsObject().Select(e => e.Key), .. LocalConfiguration.RawListeners(configuration).Select(l => l.Name)];

    private static int ProcessUid(int pid)
    {
        // /proc/PID/status "Uid:  real  effective  saved  filesystem"
        var line = File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal));
        var uids = line[4..].Split('\t', ' ', StringSplitOptions.RemoveEmptyEntries).Select(u => int.Parse(u, System.Globalization.CultureInfo.InvariantCulture)).Distinct().ToList();
        Assert.True(uids.Count == 1, $"mixed uids: {line}");
        return uids[0];
    }
}
