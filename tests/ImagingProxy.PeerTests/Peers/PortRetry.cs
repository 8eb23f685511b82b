namespace ImagingProxy.PeerTests.Peers;

/// <summary>
/// Starts a peer that needs a fixed port on a port from <see cref="FreePort"/>, and again on another one when the
/// peer exits before it is ready (the port was taken between the check and the bind).
/// </summary>
public static class PortRetry
{
    public const int DefaultAttempts = 4;

    public static async Task<(PeerProcess Process, T Ports)> StartAsync<T>(
        Func<T> choosePorts,
        Func<T, PeerProcess> start,
        Func<PeerProcess, T, CancellationToken, Task> waitReady,
        int attempts = DefaultAttempts,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(choosePorts);
        ArgumentNullException.ThrowIfNull(start);
        ArgumentNullException.ThrowIfNull(waitReady);
        for (var attempt = 1; ; attempt++)
        {
            var ports = choosePorts();
            var process = start(ports);
            try
            {
                await waitReady(process, ports, cancellationToken);
                return (process, ports);
            }
            catch (InvalidOperationException) when (process.HasExited && attempt < attempts)
            {
                await process.DisposeAsync();
            }
            catch
            {
                await process.DisposeAsync();
                throw;
            }
        }
    }
}
