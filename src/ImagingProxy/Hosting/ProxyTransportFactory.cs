using System.Net;
using System.Net.Sockets;
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
/// a listener never ends because of it. A bind that fails for another reason than a port in use (which Kestrel reports
/// with the address itself) fails with a <see cref="SocketException"/> of the same error whose message names the listener
/// and its address: the socket's own ("Permission denied") names neither, and it is all the start-up error shows.
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
        try
        {
            var listener = FindRawListener(endpoint);
            if (listener is null)
            {
                return await http.BindAsync(endpoint, cancellationToken);
            }

            var bound = await raw.BindAsync(endpoint, cancellationToken);
            return acceptHook(listener) is { } hook ? new HookedListener(bound, hook, listener.Name, logger) : bound;
        }
        catch (SocketException ex)
        {
            // Still a SocketException: Kestrel's "localhost" and "*" endpoints fall back to another address on one.
            throw new SocketException((int)ex.SocketErrorCode, BindFailureMessage(endpoint, ex));
        }
    }

    /// <summary>"Listener 'dicom' (Dicom) could not bind 0.0.0.0:104: Permission denied (...)": the listener, its address, the cause.</summary>
    private string BindFailureMessage(EndPoint endpoint, SocketException ex)
    {
        string? name = null;
        string? kind = null;
        foreach (var listener in registry.All)
        {
            if (ReferenceEquals(listener.Options.EndPoint, endpoint))
            {
                (name, kind) = (listener.Name, listener.Kind);
                break;
            }
        }

        var hint = ex.SocketErrorCode switch
        {
            SocketError.AccessDenied => " (a port under 1024 needs root, the capability NET_BIND_SERVICE or the sysctl net.ipv4.ip_unprivileged_port_start; deploy/README.md)",
            SocketError.AddressNotAvailable => " (the address is not one of this host's)",
            _ => string.Empty,
        };
        var who = name is null ? "Address" : $"Listener '{name}' ({kind})";
        return $"{who} could not bind {endpoint}: {ex.Message}{hint}";
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
