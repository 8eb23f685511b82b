using ImagingProxy.Hosting;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace ImagingProxy.Dicom;

/// <summary>
/// Starts each association of a plain-TCP DICOM listener on the thread that accepted its connection (the socket
/// engine's, with inline scheduling), instead of after Kestrel queued the connection to the thread pool: the
/// A-ASSOCIATE-RQ is read, routed and sent on (and an <c>EarlyConnect</c> node connect started) as soon as it arrives,
/// like HAProxy does in <c>mode tcp</c>. Kestrel's pipeline still calls <see cref="DicomConnectionHandler.OnConnectedAsync"/>,
/// which then waits for the association already running. TLS listeners are not started early: their handshake runs in
/// Kestrel's middleware. Nor while <c>Kestrel:Limits:MaxConcurrentConnections</c> is set: Kestrel checks it only when it
/// dispatches the connection, and one it refuses then must not have an association already running.
/// </summary>
public sealed class DicomAcceptStart(DicomConnectionHandler handler, IReadOnlySet<string> listenerNames, KestrelServerLimits? limits = null)
{
    /// <summary>For <see cref="ProxyTransportFactory"/>: the hook of a DICOM listener that starts associations at accept, else null.</summary>
    public Action<ConnectionContext>? HookFor(ProxyListener listener)
    {
        ArgumentNullException.ThrowIfNull(listener);
        if (listener.Kind != ProxyListener.DicomKind || !listenerNames.Contains(listener.Name))
        {
            return null;
        }

        var name = listener.Name;
        return connection =>
        {
            // Read per connection: a reload can set or clear the limit.
            if (limits?.MaxConcurrentConnections is null)
            {
                handler.StartAtAccept(connection, name);
            }
        };
    }
}
