using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Hosting;

/// <summary>
/// Closes the Admin endpoint of <see cref="SplitKestrelServer"/> once every hosted service has stopped
/// (<see cref="IHostedLifecycleService.StoppedAsync"/>), that is after the data listeners have drained: probes and
/// scrapes are answered through the whole drain, and the Admin endpoint closes last, as the process exits.
/// </summary>
internal sealed class AdminServerShutdown(SplitKestrelServer server, ILogger<AdminServerShutdown> logger) : IHostedLifecycleService
{
    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public async Task StoppedAsync(CancellationToken cancellationToken)
    {
        HostingLog.AdminClosing(logger);
        await server.StopAdminAsync(cancellationToken);
    }
}
