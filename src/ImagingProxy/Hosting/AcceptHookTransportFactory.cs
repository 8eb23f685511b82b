using System.Net;
using Microsoft.AspNetCore.Connections;

namespace ImagingProxy.Hosting;

/// <summary>
/// Kestrel's transport with a hook on each accepted connection, called on the thread that accepted it (the socket
/// engine's, with inline scheduling) before Kestrel queues the connection to the thread pool for its middleware and
/// handler (<see cref="Dicom.DicomAcceptStart"/>). The hook must not block: the next accept waits for it.
/// </summary>
public sealed class AcceptHookTransportFactory(IConnectionListenerFactory inner, Action<ConnectionContext> accepted) : IConnectionListenerFactory
{
    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
        => new Listener(await inner.BindAsync(endpoint, cancellationToken), accepted);

    private sealed class Listener(IConnectionListener inner, Action<ConnectionContext> accepted) : IConnectionListener
    {
        public EndPoint EndPoint => inner.EndPoint;

        public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            var connection = await inner.AcceptAsync(cancellationToken);
            if (connection is not null)
            {
                accepted(connection);
            }

            return connection;
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => inner.UnbindAsync(cancellationToken);

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
