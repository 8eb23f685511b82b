using System.Net;
using ImagingProxy.Hosting;
using Microsoft.AspNetCore.Connections;

namespace ImagingProxy.Dicom;

/// <summary>
/// Starts each association of a plain-TCP DICOM listener on the thread that accepted its connection (the socket
/// engine's, with inline scheduling), instead of after Kestrel queued the connection to the thread pool: the
/// A-ASSOCIATE-RQ is read, routed and sent on (and an <c>EarlyConnect</c> node connect started) as soon as it arrives,
/// like HAProxy does in <c>mode tcp</c>. Kestrel's pipeline still calls <see cref="DicomConnectionHandler.OnConnectedAsync"/>,
/// which then waits for the association already running. TLS listeners are not started early: their handshake runs in
/// Kestrel's middleware.
/// </summary>
public sealed class DicomAcceptStart(DicomConnectionHandler handler, ListenerRegistry registry, IReadOnlySet<string> listenerNames)
{
    private ProxyListener[]? _listeners;

    /// <summary>Called by <see cref="AcceptHookTransportFactory"/> for every accepted connection of every endpoint.</summary>
    public void OnAccepted(ConnectionContext connection)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var listeners = _listeners ??= FindListeners();
        foreach (var listener in listeners)
        {
            if (Accepts(listener.EndPoint, connection.LocalEndPoint))
            {
                handler.StartAtAccept(connection, listener.Name);
                return;
            }
        }
    }

    /// <summary>True when a connection with local end point <paramref name="local"/> came in on <paramref name="bound"/>.</summary>
    public static bool Accepts(EndPoint bound, EndPoint? local)
    {
        if (bound is not IPEndPoint listening || local is not IPEndPoint connected || listening.Port != connected.Port)
        {
            return false;
        }

        var address = connected.Address.IsIPv4MappedToIPv6 ? connected.Address.MapToIPv4() : connected.Address;
        return listening.Address.Equals(IPAddress.Any) || listening.Address.Equals(IPAddress.IPv6Any) || listening.Address.Equals(address) || listening.Address.Equals(connected.Address);
    }

    private ProxyListener[] FindListeners()
    {
        var found = new List<ProxyListener>();
        foreach (var listener in registry.All)
        {
            if (listener.Kind == "Dicom" && listenerNames.Contains(listener.Name))
            {
                found.Add(listener);
            }
        }

        return [.. found];
    }
}
