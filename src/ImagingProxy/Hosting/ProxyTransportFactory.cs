using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Hosting;

/// <summary>
/// Kestrel's transport for ImagingProxy: HTTP endpoints bind through <c>http</c> (Kestrel's socket transport as
/// configured), the raw DICOM and MLLP listeners through <c>raw</c> (the same transport, receiving without a zero-byte
/// wait first, see <see cref="ImagingProxyApp"/>), and a raw listener for which <c>acceptHook</c> gives a hook gets it
/// called with each accepted connection on the thread that accepted it, before Kestrel queues the connection to the
/// thread pool for its middleware and handler (<see cref="Dicom.DicomAcceptStart"/>). A hook must not block: the next
/// accept waits for it. A hook that throws is logged and the connection goes on to Kestrel as usual: the accept loop of
/// a listener never ends because of it.
/// </summary>
public sealed class ProxyTransportFactory(
    IConnectionListenerFactory http,
    IConnectionListenerFactory raw,
    ListenerRegistry registry,
    Func<ProxyListener, Action<ConnectionContext>?> acceptHook,
    ILogger<ProxyTransportFactory> logger) : IConnectionListenerFactory
{
    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var listener = FindRawListener(endpoint);
        if (listener is null)
        {
            return await http.BindAsync(endpoint, cancellationToken);
        }

        var bound = await raw.BindAsync(endpoint, cancellationToken);
        return acceptHook(listener) is { } hook ? new HookedListener(bound, hook, listener.Name, logger) : bound;
    }

    /// <summary>
    /// The raw listener Kestrel binds <paramref name="endpoint"/> for, or null for HTTP. Kestrel passes the listener's own
    /// <c>ListenOptions.EndPoint</c> object, which tells listeners apart even when several ask for the same address and
    /// port 0; equal values are not enough (an HTTP endpoint and a DICOM listener both on 127.0.0.1:0).
    /// </summary>
    private ProxyListener? FindRawListener(EndPoint endpoint)
    {
        foreach (var listener in registry.All)
        {
            if (ReferenceEquals(listener.Options.EndPoint, endpoint))
            {
                return listener.Kind == ProxyListener.HttpKind ? null : listener;
            }
        }

        return null;
    }

    private sealed class HookedListener(IConnectionListener inner, Action<ConnectionContext> accepted, string name, ILogger logger) : IConnectionListener
    {
        public EndPoint EndPoint => inner.EndPoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            var connection = await inner.AcceptAsync(cancellationToken);
            if (connection is not null)
            {
                try
                {
                    accepted(connection);
                }
                catch (Exception ex)
                {
                    HostingLog.AcceptHookFailed(logger, ex, name, connection.ConnectionId);
                }
            }

            return connection;
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => inner.UnbindAsync(cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
