using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Http.Features;

namespace ImagingProxy.Hosting;

/// <summary>
/// The host's <see cref="IServer"/> when <c>Kestrel:Endpoints:Admin</c> is configured: two Kestrel servers running the
/// one application pipeline. The data server binds every other endpoint and the DICOM and MLLP listeners; the admin
/// server binds only the Admin endpoint. Kestrel stops all of a server's listeners at once, so stopping the host
/// (SIGTERM) stops the data server alone: its listeners close at once and its connections drain as before, while the
/// Admin endpoint keeps answering <c>/healthz</c>, <c>/readyz</c> (503 "draining"), <c>/status</c> and <c>/metrics</c>.
/// <see cref="AdminServerShutdown"/> stops the admin server after every hosted service has stopped.
/// </summary>
public sealed class SplitKestrelServer : IServer
{
    private readonly IServer _data;
    private readonly IServer _admin;
    private readonly bool _hasDataListeners;
    private int _disposed;

    /// <param name="data">The server of every listener but Admin.</param>
    /// <param name="admin">The server of the Admin endpoint.</param>
    /// <param name="hasDataListeners">False when only Admin is configured: the data server is then never started
    /// (Kestrel without an endpoint would bind its default address).</param>
    public SplitKestrelServer(IServer data, IServer admin, bool hasDataListeners)
    {
        _data = data;
        _admin = admin;
        _hasDataListeners = hasDataListeners;
    }

    /// <summary>The data server's features (its addresses are those the host logs as "Now listening on").</summary>
    public IFeatureCollection Features => _data.Features;

    public async Task StartAsync<TContext>(IHttpApplication<TContext> application, CancellationToken cancellationToken)
        where TContext : notnull
    {
        await _admin.StartAsync(application, cancellationToken);
        if (!_hasDataListeners)
        {
            return;
        }

        try
        {
            await _data.StartAsync(application, cancellationToken);
        }
        catch
        {
            await _admin.StopAsync(new CancellationToken(canceled: true));
            throw;
        }
    }

    /// <summary>The host is stopping: the data listeners close and their connections drain; Admin keeps serving.</summary>
    public Task StopAsync(CancellationToken cancellationToken)
        => _hasDataListeners ? _data.StopAsync(cancellationToken) : Task.CompletedTask;

    /// <summary>Closes the Admin endpoint, letting the requests it is serving finish until <paramref name="cancellationToken"/>.</summary>
    public Task StopAdminAsync(CancellationToken cancellationToken) => _admin.StopAsync(cancellationToken);

    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _data.Dispose();
            _admin.Dispose();
        }
    }
}
