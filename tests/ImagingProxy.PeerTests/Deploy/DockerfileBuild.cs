using System.Diagnostics;
using System.Runtime.Versioning;
using System.Text;
using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.Deploy;

/// <summary>
/// deploy/Dockerfile followed without a Docker engine (none on the development machines or in CI): the build stage's
/// WORKDIR, COPY and RUN dotnet instructions run against a temporary directory standing for the container's
/// filesystem, COPY taking from the repository through deploy/Dockerfile.dockerignore, RUN using this machine's SDK
/// and package sources. Then the runtime stage's COPY --from, WORKDIR, ENV, USER and ENTRYPOINT are read so a test can
/// start the published app as the image would. Any other instruction fails: the test must learn it first.
/// Set <see cref="DockerfileVariable"/> to follow another Dockerfile (its .dockerignore is the one next to it).
/// </summary>
[SupportedOSPlatform("linux")]
public sealed class DockerfileBuild : IAsyncLifetime
{
    public const string DockerfileVariable = "IMAGINGPROXY_TEST_DOCKERFILE";
    public const string BuildStageName = "build";

    /// <summary>The aspnet image's own ENV that matters here (the Dockerfile's ENV overrides it).</summary>
    public static readonly IReadOnlyDictionary<string, string> BaseImageEnvironment = new Dictionary<string, string>
    {
        ["APP_UID"] = "1654",
        ["ASPNETCORE_HTTP_PORTS"] = "8080",
        ["DOTNET_RUNNING_IN_CONTAINER"] = "true",
    };

    private static readonly TimeSpan s_runTimeout = TimeSpan.FromMinutes(5);
    private readonly List<string> _steps = [];
    private readonly Dictionary<string, string> _environment = new(BaseImageEnvironment);

    public DockerfileBuild()
    {
        DockerfilePath = Environment.GetEnvironmentVariable(DockerfileVariable) is { Length: > 0 } overridden
            ? Path.GetFullPath(overridden)
            : Path.Combine(RepoPaths.Root, "deploy", "Dockerfile");
        Root = Directory.CreateTempSubdirectory("imagingproxy-dockerfile-").FullName;

        // The runtime stage runs as another uid: it must traverse the temporary root (created 0700).
        File.SetUnixFileMode(Root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
            | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        Build = new StageFileSystem(Path.Combine(Root, "build"));
        Runtime = new StageFileSystem(Path.Combine(Root, "runtime"));
    }

    public static string Context => RepoPaths.Root;

    public string DockerfilePath { get; }

    public string Root { get; }

    public StageFileSystem Build { get; }

    public StageFileSystem Runtime { get; }

    public string? DockerignorePath { get; private set; }

    /// <summary>What each instruction did, for the test output.</summary>
    public IReadOnlyList<string> Steps => _steps;

    public TimeSpan BuildStageDuration { get; private set; }

    /// <summary>The runtime stage's environment: the base image's, then the Dockerfile's ENV instructions.</summary>
    public IReadOnlyDictionary<string, string> ImageEnvironment => _environment;

    public string User { get; private set; } = "";

    public IReadOnlyList<string> Entrypoint { get; private set; } = [];

    public async Task InitializeAsync()
    {
        var stages = DockerfileParser.Parse(await File.ReadAllTextAsync(DockerfilePath));
        var build = stages.FirstOrDefault(s => s.Name == BuildStageName)
            ?? throw new InvalidOperationException($"{DockerfilePath}: no stage named '{BuildStageName}' (FROM ... AS {BuildStageName})");
        var runtime = stages[^1];
        if (stages.Count != 2 || runtime == build)
        {
            throw new NotSupportedException($"{DockerfilePath}: expected two stages, '{BuildStageName}' then the runtime stage; found {stages.Count}");
        }

        var (dockerignore, dockerignorePath) = DockerIgnore.ForDockerfile(DockerfilePath, Context);
        DockerignorePath = dockerignorePath;
        var started = Stopwatch.StartNew();
        foreach (var instruction in build.Instructions)
        {
            switch (instruction.Keyword)
            {
                case "WORKDIR":
                    Build.ChangeWorkingDirectory(Single(instruction));
                    _steps.Add($"build {instruction}");
                    break;
                case "COPY":
                    CopyFromContext(instruction, dockerignore);
                    break;
                case "RUN":
                    await RunDotnetAsync(instruction);
                    break;
                default:
                    throw Unsupported(instruction, "the build stage may hold only WORKDIR, COPY and RUN dotnet");
            }
        }

        BuildStageDuration = started.Elapsed;
        foreach (var instruction in runtime.Instructions)
        {
            ReadRuntime(instruction, build);
        }
    }

    public Task DisposeAsync()
    {
        Directory.Delete(Root, recursive: true);
        return Task.CompletedTask;
    }

    private void CopyFromContext(DockerInstruction instruction, DockerIgnore dockerignore)
    {
        var words = DockerfileParser.ExecOrShellWords(instruction);
        if (words.FirstOrDefault(w => w.StartsWith("--", StringComparison.Ordinal)) is { } flag)
        {
            throw Unsupported(instruction, $"COPY {flag} is not followed in the build stage");
        }

        if (words.Count < 2)
        {
            throw new InvalidDataException($"{Where(instruction)}: COPY needs a source and a destination");
        }

        var destination = words[^1];
        var intoDirectory = destination.EndsWith('/') || words.Count > 2;
        var copied = 0;
        foreach (var source in words[..^1])
        {
            // Sources are relative to the context root, whatever their leading '/' or './'.
            var relative = Path.GetRelativePath("/", Path.GetFullPath(source, "/"));
            if (relative == ".")
            {
                throw Unsupported(instruction, "COPY of the whole context is not followed");
            }

            if (dockerignore.IsExcluded(relative))
            {
                throw new InvalidOperationException(
                    $"{Where(instruction)}: '{source}' is not in the build context: {DockerignorePath} excludes it (pattern '{dockerignore.DecidingPattern(relative)}'); docker build would fail with \"not found\"");
            }

            var full = Path.Join(Context, relative);
            if (!File.Exists(full) && !Directory.Exists(full))
            {
                throw new InvalidOperationException($"{Where(instruction)}: '{source}' does not exist in the build context {Context}");
            }

            copied += Build.Copy(Context, relative, destination, intoDirectory, path => !dockerignore.IsExcluded(path));
        }

        _steps.Add($"build {instruction}: {copied} files");
    }

    private async Task RunDotnetAsync(DockerInstruction instruction)
    {
        var words = DockerfileParser.ExecOrShellWords(instruction);
        if (words.Count == 0 || words[0] != "dotnet")
        {
            throw Unsupported(instruction, "RUN in the build stage must be a plain `dotnet ...` command");
        }

        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = Build.HostWorkingDirectory,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var word in words.Skip(1))
        {
            start.ArgumentList.Add(MapArgument(word));
        }

        // This machine's SDK, HOME and package sources (as the repository's own build uses them), without what the
        // test host inherited from `dotnet test` (MSBuild paths) and without build servers outliving the test.
        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("MSBUILD", StringComparison.OrdinalIgnoreCase) || k.StartsWith("VSTEST", StringComparison.OrdinalIgnoreCase)).ToList())
        {
            start.Environment.Remove(key);
        }

        start.Environment["DOTNET_NOLOGO"] = "1";
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        start.Environment["DOTNET_CLI_USE_MSBUILD_SERVER"] = "0";
        start.Environment["MSBUILDDISABLENODEREUSE"] = "1";
        start.Environment["UseSharedCompilation"] = "false";

        var started = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException("dotnet did not start");
        var output = new StringBuilder();
        process.OutputDataReceived += (_, e) => Append(output, e.Data);
        process.ErrorDataReceived += (_, e) => Append(output, e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        try
        {
            await process.WaitForExitAsync().WaitAsync(s_runTimeout);
        }
        catch (TimeoutException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            throw new TimeoutException($"{Where(instruction)}: did not finish within {s_runTimeout}:\n{Text(output)}");
        }

        // The parameterless wait also drains the redirected output.
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{Where(instruction)}: `{string.Join(' ', start.ArgumentList.Prepend("dotnet"))}` in {start.WorkingDirectory} exited with {process.ExitCode}:\n{Text(output)}");
        }

        _steps.Add($"build {instruction}: {started.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>Absolute container paths (<c>/app</c>, <c>--output=/app</c>) become paths under the stage's root.</summary>
    private string MapArgument(string word)
    {
        if (word.StartsWith('/'))
        {
            return Build.Map(word);
        }

        var equals = word.IndexOf('=', StringComparison.Ordinal);
        return word.StartsWith('-') && equals > 0 && word.AsSpan(equals + 1).StartsWith("/")
            ? string.Concat(word.AsSpan(0, equals + 1), Build.Map(word[(equals + 1)..]))
            : word;
    }

    private void ReadRuntime(DockerInstruction instruction, DockerStage build)
    {
        switch (instruction.Keyword)
        {
            case "WORKDIR":
                Runtime.ChangeWorkingDirectory(Single(instruction));
                break;
            case "COPY":
                CopyFromBuildStage(instruction, build);
                return;
            case "ENV":
                foreach (var word in DockerfileParser.Words(instruction, instruction.Arguments))
                {
                    var equals = word.IndexOf('=', StringComparison.Ordinal);
                    if (equals <= 0)
                    {
                        throw Unsupported(instruction, "ENV must be KEY=VALUE pairs");
                    }

                    _environment[word[..equals]] = word[(equals + 1)..];
                }

                break;
            case "USER":
                User = instruction.Arguments;
                break;
            case "ENTRYPOINT":
                if (!instruction.Arguments.StartsWith('['))
                {
                    throw Unsupported(instruction, "ENTRYPOINT must be the exec form (in shell form the process would be /bin/sh, not the proxy)");
                }

                Entrypoint = DockerfileParser.ExecOrShellWords(instruction);
                break;
            case "EXPOSE":
                // Documentation only; KustomizationTests check the ports the configuration binds.
                break;
            default:
                throw Unsupported(instruction, "the runtime stage may hold only WORKDIR, COPY --from, ENV, USER, ENTRYPOINT and EXPOSE");
        }

        _steps.Add($"runtime {instruction}");
    }

    private void CopyFromBuildStage(DockerInstruction instruction, DockerStage build)
    {
        var words = DockerfileParser.ExecOrShellWords(instruction);
        var flags = words.TakeWhile(w => w.StartsWith("--", StringComparison.Ordinal)).ToList();
        var paths = words.Skip(flags.Count).ToList();
        if (!flags.Contains($"--from={build.Name}"))
        {
            throw Unsupported(instruction, $"the runtime stage may copy only --from={build.Name}");
        }

        // The test runs as root, so copies are owned by root: the only owner it can honour.
        if (flags.FirstOrDefault(f => f != $"--from={build.Name}" && f is not "--chown=root:root" and not "--chown=0:0") is { } other)
        {
            throw Unsupported(instruction, $"COPY flag {other} is not followed");
        }

        if (paths.Count < 2)
        {
            throw new InvalidDataException($"{Where(instruction)}: COPY needs a source and a destination");
        }

        var copied = 0;
        foreach (var source in paths[..^1])
        {
            // COPY --from sources are paths of the other stage's filesystem, from its root.
            var relative = Path.GetRelativePath("/", Path.GetFullPath(source, "/"));
            copied += Runtime.Copy(Build.Root, relative, paths[^1], paths[^1].EndsWith('/') || paths.Count > 2, _ => true);
        }

        _steps.Add($"runtime {instruction}: {copied} files");
    }

    private static void Append(StringBuilder output, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (output)
        {
            output.AppendLine(line);
        }
    }

    private static string Text(StringBuilder output)
    {
        lock (output)
        {
            return output.ToString();
        }
    }

    private string Single(DockerInstruction instruction)
    {
        var words = DockerfileParser.Words(instruction, instruction.Arguments);
        return words.Count == 1 ? words[0] : throw new InvalidDataException($"{Where(instruction)}: expected one argument");
    }

    private string Where(DockerInstruction instruction) => $"{DockerfilePath} {instruction}";

    private NotSupportedException Unsupported(DockerInstruction instruction, string what)
        => new($"{Where(instruction)}: {what}. DockerfileBuild (tests/ImagingProxy.PeerTests/Deploy) follows the Dockerfile without Docker and cannot follow this: teach it the instruction, or keep the Dockerfile to what it follows.");
}
