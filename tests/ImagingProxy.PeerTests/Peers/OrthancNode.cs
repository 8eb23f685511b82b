using System.Net.Http.Headers;
using System.Text.Json;

namespace ImagingProxy.PeerTests.Peers;

/// <summary>
/// A real Orthanc PACS (Debian's orthanc + orthanc-dicomweb) with its config, index and storage in a temp directory.
/// Ports come from <see cref="FreePort"/> (Orthanc binds all interfaces; HTTP answers loopback only with
/// <c>RemoteAccessAllowed: false</c>), with a retry on another pair when Orthanc exits because a port was taken.
/// Ready once <c>GET /system</c> answers. Dispose kills it and deletes the directory.
/// </summary>
public sealed class OrthancNode : IAsyncDisposable, IDisposable
{
    public const string Executable = "/usr/sbin/Orthanc";
    public const string PluginsDirectory = "/usr/share/orthanc/plugins";

    private static readonly JsonSerializerOptions s_configJson = new() { WriteIndented = true };

    private readonly TempDirectory _directory;

    private OrthancNode(PeerProcess process, TempDirectory directory, string aeTitle, int dicomPort, int httpPort)
    {
        Process = process;
        _directory = directory;
        AeTitle = aeTitle;
        DicomPort = dicomPort;
        HttpPort = httpPort;
        BaseAddress = new Uri($"http://127.0.0.1:{httpPort}/");
        Http = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(60) };
    }

    public PeerProcess Process { get; }

    public string AeTitle { get; }

    public int DicomPort { get; }

    public int HttpPort { get; }

    public Uri BaseAddress { get; }

    /// <summary>The DICOMweb root, <c>http://127.0.0.1:PORT/dicom-web/</c>.</summary>
    public Uri DicomWebRoot => new(BaseAddress, "dicom-web/");

    /// <summary>A client with <see cref="BaseAddress"/> set; owned by the node.</summary>
    public HttpClient Http { get; }

    public string Directory => _directory.Path;

    public DicomNode Node => new(AeTitle, "127.0.0.1", DicomPort);

    public static async Task<OrthancNode> StartAsync(OrthancOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new OrthancOptions();
        var directory = TempDirectory.Create("orthanc-");
        try
        {
            var storage = directory.Sub("storage");
            var configPath = Path.Combine(directory.Path, "orthanc.json");
            var (process, ports) = await PortRetry.StartAsync(
                () => (Dicom: FreePort.Next(), Http: FreePort.Next()),
                ports =>
                {
                    File.WriteAllText(configPath, Config(options, ports.Dicom, ports.Http, storage));
                    return PeerProcess.Start(new PeerStartInfo(Executable)
                    {
                        Name = $"Orthanc {options.AeTitle} dicom:{ports.Dicom} http:{ports.Http}",
                        Arguments = [configPath],
                        WorkingDirectory = directory.Path,
                    });
                },
                (process, ports, token) => process.WaitForHttpAsync(new Uri($"http://127.0.0.1:{ports.Http}/system"), options.StartTimeout, token),
                cancellationToken: cancellationToken);
            return new OrthancNode(process, directory, options.AeTitle, ports.Dicom, ports.Http);
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    /// <summary>Uploads a DICOM file through the REST API (<c>POST /instances</c>); returns Orthanc's instance id.</summary>
    public async Task<string> UploadInstanceAsync(string path, CancellationToken cancellationToken = default)
    {
        await using var file = File.OpenRead(path);
        using var content = new StreamContent(file);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/dicom");
        using var response = await Http.PostAsync(new Uri("instances", UriKind.Relative), content, cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"Orthanc {AeTitle} refused {path}: {(int)response.StatusCode} {body}");
        }

        using var json = JsonDocument.Parse(body);
        return json.RootElement.GetProperty("ID").GetString()!;
    }

    /// <summary>GET a REST or DICOMweb resource (relative to <see cref="BaseAddress"/>) as JSON.</summary>
    public async Task<JsonElement> GetJsonAsync(string relativePath, CancellationToken cancellationToken = default)
    {
        using var response = await Http.GetAsync(new Uri(relativePath, UriKind.Relative), cancellationToken);
        var body = await response.Content.ReadAsStringAsync(cancellationToken);
        if (!response.IsSuccessStatusCode)
        {
            throw new HttpRequestException($"GET {relativePath} on Orthanc {AeTitle}: {(int)response.StatusCode} {body}");
        }

        // DICOMweb answers 204 with no body when nothing matches.
        using var json = JsonDocument.Parse(body.Length == 0 ? "[]" : body);
        return json.RootElement.Clone();
    }

    public Task KillAsync() => Process.KillAsync();

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await Process.DisposeAsync();
        _directory.Dispose();
    }

    public void Dispose()
    {
        Http.Dispose();
        Process.Dispose();
        _directory.Dispose();
    }

    public override string ToString() => $"Orthanc {AeTitle} (dicom {DicomPort}, http {HttpPort})";

    private static string Config(OrthancOptions options, int dicomPort, int httpPort, string storage)
    {
        var config = new Dictionary<string, object?>
        {
            ["Name"] = options.AeTitle,
            ["DicomAet"] = options.AeTitle,
            ["DicomPort"] = dicomPort,
            ["HttpPort"] = httpPort,
            ["StorageDirectory"] = storage,
            ["IndexDirectory"] = storage,
            ["RemoteAccessAllowed"] = false,
            ["AuthenticationEnabled"] = false,
            ["DicomCheckCalledAet"] = options.CheckCalledAeTitle,
            ["DicomAlwaysAllowEcho"] = true,
            ["DicomAlwaysAllowStore"] = true,
            ["DicomAlwaysAllowFind"] = true,
            ["DicomAlwaysAllowGet"] = true,
            ["DicomAlwaysAllowMove"] = true,
            ["SaveJobs"] = false,
            ["StorageCompression"] = false,
            ["HttpThreadsCount"] = 8,
            ["DicomThreadsCount"] = 4,
            ["DicomModalities"] = options.Modalities.ToDictionary(m => m.AeTitle, m => new object[] { m.AeTitle, m.Host, m.Port }),
            ["Plugins"] = options.DicomWeb ? new[] { PluginsDirectory } : Array.Empty<string>(),
            ["DicomWeb"] = new Dictionary<string, object> { ["Enable"] = options.DicomWeb, ["Root"] = "/dicom-web/" },
        };
        foreach (var (key, value) in options.Settings)
        {
            config[key] = value;
        }

        return JsonSerializer.Serialize(config, s_configJson);
    }
}
