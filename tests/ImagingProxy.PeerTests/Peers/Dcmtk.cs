using System.Globalization;
using System.Text;

namespace ImagingProxy.PeerTests.Peers;

/// <summary>
/// Debian's dcmtk as real DICOM peers: the client tools run to completion with a timeout, the servers
/// (storescp, dcmqrscp) run until disposed. Every process gets <c>TCP_NODELAY=1</c> (see <see cref="PeerProcess"/>).
/// </summary>
public static class Dcmtk
{
    /// <summary>Runs a dcmtk tool (or any program) to completion. Kills it and throws <see cref="TimeoutException"/> on timeout.</summary>
    public static async Task<DcmtkResult> RunAsync(string tool, IEnumerable<string> arguments, TimeSpan timeout, CancellationToken cancellationToken = default)
    {
        await using var process = PeerProcess.Start(new PeerStartInfo(tool) { Arguments = [.. arguments] });
        try
        {
            var exitCode = await process.Exited.WaitAsync(timeout, cancellationToken);
            return new DcmtkResult(tool, exitCode, process.Output);
        }
        catch (TimeoutException)
        {
            await process.KillAsync();
            throw new TimeoutException($"{tool} did not finish within {timeout}.\n{process.Output}");
        }
    }

    /// <summary>echoscu: C-ECHO (verification, PS3.7 §9.1.5).</summary>
    public static Task<DcmtkResult> EchoAsync(int port, string calledAeTitle, ScuOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new ScuOptions();
        return RunAsync("echoscu", [.. Common(options, calledAeTitle), options.Host, Port(port)], options.Timeout, cancellationToken);
    }

    /// <summary>storescu: C-STORE of each file in one association (<c>-R</c>: only the contexts the files need).</summary>
    public static Task<DcmtkResult> StoreAsync(int port, string calledAeTitle, IEnumerable<string> files, ScuOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(files);
        options ??= new ScuOptions();
        return RunAsync("storescu", [.. Common(options, calledAeTitle), "-R", options.Host, Port(port), .. files], options.Timeout, cancellationToken);
    }

    /// <summary>
    /// findscu, study root (<c>-S</c>), with <c>-k</c> keys such as <c>QueryRetrieveLevel=STUDY</c> or <c>StudyInstanceUID</c>
    /// (an empty return key). Pass <c>-v</c> in <see cref="ScuOptions.ExtraArguments"/> to get the responses in the output.
    /// </summary>
    public static Task<DcmtkResult> FindAsync(int port, string calledAeTitle, IEnumerable<string> keys, ScuOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keys);
        options ??= new ScuOptions();
        return RunAsync("findscu", [.. Common(options, calledAeTitle), "-S", .. Keys(keys), options.Host, Port(port)], options.Timeout, cancellationToken);
    }

    /// <summary>movescu, study root (<c>-S</c>): asks the SCP to send the matches to <paramref name="moveDestination"/> (<c>-aem</c>).</summary>
    public static Task<DcmtkResult> MoveAsync(int port, string calledAeTitle, string moveDestination, IEnumerable<string> keys, ScuOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(keys);
        options ??= new ScuOptions();
        return RunAsync("movescu", [.. Common(options, calledAeTitle), "-S", "-aem", moveDestination, .. Keys(keys), options.Host, Port(port)], options.Timeout, cancellationToken);
    }

    /// <summary>Starts storescp on a free port and waits until it accepts connections.</summary>
    public static async Task<StoreScp> StartStoreScpAsync(StoreScpOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new StoreScpOptions();
        var owned = options.OutputDirectory is null ? TempDirectory.Create("storescp-") : null;
        var outputDirectory = options.OutputDirectory ?? owned!.Path;
        Directory.CreateDirectory(outputDirectory);
        try
        {
            var (process, port) = await PortRetry.StartAsync(
                FreePort.Next,
                port => PeerProcess.Start(new PeerStartInfo("storescp")
                {
                    Name = $"storescp {options.AeTitle}:{port}",
                    Arguments = [.. StoreScpArguments(options, outputDirectory, port)],
                }),
                (process, port, token) => process.WaitForTcpPortAsync(port, options.StartTimeout, token),
                cancellationToken: cancellationToken);
            return new StoreScp(process, options.AeTitle, port, outputDirectory, owned);
        }
        catch
        {
            owned?.Dispose();
            throw;
        }
    }

    /// <summary>Writes a dcmqrscp config to a temp directory, starts dcmqrscp on a free port and waits until it accepts connections.</summary>
    public static async Task<DcmQrScp> StartDcmQrScpAsync(DcmQrScpOptions? options = null, CancellationToken cancellationToken = default)
    {
        options ??= new DcmQrScpOptions();
        var directory = TempDirectory.Create("dcmqrscp-");
        try
        {
            var database = directory.Sub("db");
            var configPath = Path.Combine(directory.Path, "dcmqrscp.cfg");
            var (process, port) = await PortRetry.StartAsync(
                FreePort.Next,
                port =>
                {
                    File.WriteAllText(configPath, DcmQrScpConfig(options, port, database));
                    string[] mode = options.SingleProcess ? ["--single-process"] : [];
                    return PeerProcess.Start(new PeerStartInfo("dcmqrscp")
                    {
                        Name = $"dcmqrscp {options.AeTitle}:{port}",
                        Arguments = ["-c", configPath, .. mode, .. options.ExtraArguments],
                        WorkingDirectory = directory.Path,
                    });
                },
                (process, port, token) => process.WaitForTcpPortAsync(port, options.StartTimeout, token),
                cancellationToken: cancellationToken);
            return new DcmQrScp(process, options.AeTitle, port, directory, configPath, database);
        }
        catch
        {
            directory.Dispose();
            throw;
        }
    }

    private static IEnumerable<string> StoreScpArguments(StoreScpOptions options, string outputDirectory, int port)
    {
        yield return "-aet";
        yield return options.AeTitle;
        yield return "-od";
        yield return outputDirectory;
        if (options.BitPreserving)
        {
            yield return "+B";
        }

        if (options.MaxPdu is int pdu)
        {
            yield return "-pdu";
            yield return pdu.ToString(CultureInfo.InvariantCulture);
        }

        if (options.Fork)
        {
            yield return "--fork";
        }

        foreach (var argument in options.ExtraArguments)
        {
            yield return argument;
        }

        yield return Port(port);
    }

    private static string DcmQrScpConfig(DcmQrScpOptions options, int port, string database)
    {
        // dcmqrscp.cfg format: see /usr/share/doc/dcmtk/dcmqrcnf.txt. Peers ANY lets every calling AE in.
        var config = new StringBuilder()
            .AppendLine(CultureInfo.InvariantCulture, $"NetworkTCPPort = {port}")
            .AppendLine(CultureInfo.InvariantCulture, $"MaxPDUSize = {options.MaxPdu}")
            .AppendLine("MaxAssociations = 16")
            .AppendLine("HostTable BEGIN");
        for (var i = 0; i < options.MoveDestinations.Count; i++)
        {
            var node = options.MoveDestinations[i];
            config.AppendLine(CultureInfo.InvariantCulture, $"dest{i} = ({node.AeTitle}, {node.Host}, {node.Port})");
        }

        return config
            .AppendLine("HostTable END")
            .AppendLine("VendorTable BEGIN")
            .AppendLine("VendorTable END")
            .AppendLine("AETable BEGIN")
            .AppendLine(CultureInfo.InvariantCulture, $"{options.AeTitle} {database} RW (1000, 4096mb) ANY")
            .AppendLine("AETable END")
            .ToString();
    }

    private static IEnumerable<string> Common(ScuOptions options, string calledAeTitle)
    {
        yield return "-aec";
        yield return calledAeTitle;
        if (options.CallingAeTitle is not null)
        {
            yield return "-aet";
            yield return options.CallingAeTitle;
        }

        if (options.MaxPdu is int pdu)
        {
            yield return "-pdu";
            yield return pdu.ToString(CultureInfo.InvariantCulture);
        }

        foreach (var argument in options.ExtraArguments)
        {
            yield return argument;
        }
    }

    private static IEnumerable<string> Keys(IEnumerable<string> keys) => keys.SelectMany(key => new[] { "-k", key });

    private static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);
}
