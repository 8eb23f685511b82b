using System.ComponentModel;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.Deploy;

/// <summary>
/// deploy/kubernetes as the real kubectl renders it (peer: Debian's kubernetes-client). <c>kubectl kustomize</c>
/// prints YAML; <c>kubectl annotate --local -o json</c> turns it into JSON objects without any cluster.
/// </summary>
public sealed class RenderedKustomization : IAsyncLifetime
{
    private const string Kubectl = "kubectl";
    private const string KubectlPackage = "kubernetes-client";
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(60);

    private List<JsonElement> _objects = [];

    public static string Directory => Path.Combine(RepoPaths.Root, "deploy", "kubernetes");

    public IReadOnlyList<JsonElement> Objects => _objects;

    public async Task InitializeAsync()
    {
        var yaml = await RunAsync(["kustomize", Directory], standardInput: null);
        var json = await RunAsync(["annotate", "--local", "-f", "-", "-o", "json", "imagingproxy.test/rendered=true"], yaml);
        _objects = Parse(json);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    /// <summary>The objects of one kind.</summary>
    public IEnumerable<JsonElement> OfKind(string kind) => _objects.Where(o => o.GetProperty("kind").GetString() == kind);

    /// <summary>The only object of a kind (fails when there are none or several).</summary>
    public JsonElement OnlyOne(string kind)
    {
        var found = OfKind(kind).ToList();
        Assert.True(found.Count == 1, $"expected one {kind} in the kustomization, found {found.Count}");
        return found[0];
    }

    /// <summary>The object of a kind with this metadata.name (kustomize may have added a suffix to generated names).</summary>
    public JsonElement Named(string kind, string name)
    {
        var found = OfKind(kind).Where(o => o.GetProperty("metadata").GetProperty("name").GetString() == name).ToList();
        Assert.True(found.Count == 1, $"expected one {kind} named {name}, found {found.Count}");
        return found[0];
    }

    private static List<JsonElement> Parse(string json)
    {
        // kubectl prints one JSON object per resource, one after the other (older versions may print a List).
        var objects = new List<JsonElement>();
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(json), new JsonReaderOptions { AllowMultipleValues = true });
        while (reader.Read())
        {
            using var document = JsonDocument.ParseValue(ref reader);
            var root = document.RootElement.Clone();
            if (root.GetProperty("kind").GetString() == "List")
            {
                objects.AddRange(root.GetProperty("items").EnumerateArray());
            }
            else
            {
                objects.Add(root);
            }
        }

        Assert.True(objects.Count > 0, "kubectl rendered no object");
        return objects;
    }

    private static async Task<string> RunAsync(string[] arguments, string? standardInput)
    {
        var start = new ProcessStartInfo(Kubectl)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        // No cluster is involved: keep kubectl away from any operator's kubeconfig.
        start.Environment["KUBECONFIG"] = "/dev/null";

        Process process;
        try
        {
            process = Process.Start(start) ?? throw new InvalidOperationException($"{Kubectl} did not start");
        }
        catch (Win32Exception ex)
        {
            throw new InvalidOperationException(
                $"The Deploy tests need kubectl on PATH to render deploy/kubernetes: install Debian's {KubectlPackage} package " +
                $"(apt-get install {KubectlPackage}; scripts/install-peers.sh does). {ex.Message}", ex);
        }

        using (process)
        {
            var output = process.StandardOutput.ReadToEndAsync();
            var error = process.StandardError.ReadToEndAsync();
            if (standardInput is not null)
            {
                await process.StandardInput.WriteAsync(standardInput);
            }

            process.StandardInput.Close();
            try
            {
                await process.WaitForExitAsync().WaitAsync(s_timeout);
            }
            catch (TimeoutException)
            {
                process.Kill(entireProcessTree: true);
                throw new TimeoutException($"kubectl {string.Join(' ', arguments)} did not finish within {s_timeout}.");
            }

            var stdout = await output;
            var stderr = await error;
            if (process.ExitCode != 0)
            {
                throw new InvalidOperationException($"kubectl {string.Join(' ', arguments)} exited with {process.ExitCode}:\n{stderr}");
            }

            return stdout;
        }
    }
}
