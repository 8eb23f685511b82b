using Microsoft.Extensions.Logging;

namespace ImagingProxy.Hosting;

internal static partial class HostingLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Listener {Name} ({Kind}) bound to {Address}.")]
    public static partial void ListenerBound(ILogger logger, string name, string kind, string address);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Data listeners stopped; closing the Admin endpoint.")]
    public static partial void AdminClosing(ILogger logger);

    [LoggerMessage(EventId = 3, Level = LogLevel.Error, Message = "Accept hook of listener {Name} failed for connection {ConnectionId}; Kestrel serves it the usual way.")]
    public static partial void AcceptHookFailed(ILogger logger, Exception exception, string name, string connectionId);

    [LoggerMessage(EventId = 4, Level = LogLevel.Information, Message = "Listener {Name} serves the certificate {Thumbprint} (reloaded).")]
    public static partial void ListenerCertificateLoaded(ILogger logger, string name, string thumbprint);

    [LoggerMessage(EventId = 5, Level = LogLevel.Warning, Message = "Listener {Name} cannot load its certificate '{Path}'; the previous one keeps serving.")]
    public static partial void ListenerCertificateFailed(ILogger logger, Exception exception, string name, string path);

    [LoggerMessage(EventId = 6, Level = LogLevel.Warning, Message = "TLS handshake failed on listener {Name} ({Kind}) from {RemoteEndPoint}, connection {ConnectionId}: {Reason}.")]
    public static partial void TlsHandshakeFailed(ILogger logger, string name, string kind, string remoteEndPoint, string connectionId, string reason);

    [LoggerMessage(EventId = 7, Level = LogLevel.Warning, Message = "Listener {Name}: connection {ConnectionId} from {RemoteEndPoint} aborted; the client read nothing of its last bytes for {Seconds} s after the protocol ended.")]
    public static partial void CloseTimedOut(ILogger logger, string name, string connectionId, string remoteEndPoint, double seconds);
}
