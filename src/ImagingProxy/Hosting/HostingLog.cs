using Microsoft.Extensions.Logging;

namespace ImagingProxy.Hosting;

internal static partial class HostingLog
{
    [LoggerMessage(EventId = 1, Level = LogLevel.Information, Message = "Listener {Name} ({Kind}) bound to {Address}.")]
    public static partial void ListenerBound(ILogger logger, string name, string kind, string address);

    [LoggerMessage(EventId = 2, Level = LogLevel.Information, Message = "Data listeners stopped; closing the Admin endpoint.")]
    public static partial void AdminClosing(ILogger logger);
}
