using ImagingProxy.Hosting;
using ImagingProxy.Testing;

namespace ImagingProxy.Tests.Hosting;

/// <summary>
/// The runtime variables set at start-up. The runtime read them when this test process used its first socket, so
/// setting them here changes nothing in it; each test puts back what it found. Processes other tests start meanwhile
/// would inherit them, so these tests run alone (<see cref="ProcessEnvironmentCollection"/>).
/// </summary>
[Collection(nameof(ProcessEnvironmentCollection))]
public sealed class InlineSocketCompletionsTests : IDisposable
{
    private readonly string? _inline = Environment.GetEnvironmentVariable(InlineSocketCompletions.EnvironmentVariable);
    private readonly string? _engines = Environment.GetEnvironmentVariable(InlineSocketCompletions.EngineCountVariable);

    public void Dispose()
    {
        Environment.SetEnvironmentVariable(InlineSocketCompletions.EnvironmentVariable, _inline);
        Environment.SetEnvironmentVariable(InlineSocketCompletions.EngineCountVariable, _engines);
    }

    [Fact]
    public void SocketEngines_sets_the_runtimes_engine_count_unless_the_environment_does()
    {
        Environment.SetEnvironmentVariable(InlineSocketCompletions.EngineCountVariable, null);
        InlineSocketCompletions.Enable(inline: true, engines: 4);
        Assert.Equal("4", Environment.GetEnvironmentVariable(InlineSocketCompletions.EngineCountVariable));

        Environment.SetEnvironmentVariable(InlineSocketCompletions.EngineCountVariable, "3");
        InlineSocketCompletions.Enable(inline: true, engines: 4);
        Assert.Equal("3", Environment.GetEnvironmentVariable(InlineSocketCompletions.EngineCountVariable));
    }

    [Fact]
    public async Task The_host_runs_as_many_socket_engine_threads_as_SocketEngines_says()
    {
        if (Environment.GetEnvironmentVariable(InlineSocketCompletions.EngineCountVariable) is not null)
        {
            return; // the operator's variable wins, as it would here
        }

        using var certificate = new TestCertificate();
        var directory = Directory.CreateTempSubdirectory("imagingproxy-engines-").FullName;
        try
        {
            var config = Path.Combine(directory, "config.json");
            await File.WriteAllTextAsync(config, TestConfig.Build(certificate, "{}", imagingProxy: """{ "SocketEngines": 3 }"""));
            using var host = HostProcess.Start(["--config", config]);
            await host.PortAsync("Admin");

            // The runtime starts every engine's thread (".NET Sockets") with the first socket.
            var threads = Directory.GetDirectories($"/proc/{host.Process.Id}/task").Count(task => File.ReadAllText(Path.Combine(task, "comm")).Trim() == ".NET Sockets");
            Assert.Equal(3, threads);
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public void Without_SocketEngines_the_runtime_chooses()
    {
        Environment.SetEnvironmentVariable(InlineSocketCompletions.EngineCountVariable, null);
        InlineSocketCompletions.Enable(inline: true);
        Assert.Null(Environment.GetEnvironmentVariable(InlineSocketCompletions.EngineCountVariable));
    }
}

/// <summary>Tests that change this process's environment: run with no other test at the same time.</summary>
[CollectionDefinition(nameof(ProcessEnvironmentCollection), DisableParallelization = true)]
public sealed class ProcessEnvironmentCollection;
