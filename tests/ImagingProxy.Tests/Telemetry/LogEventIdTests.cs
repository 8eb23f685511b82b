using System.Reflection;
using ImagingProxy.Hosting;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Tests.Telemetry;

public class LogEventIdTests
{
    /// <summary>
    /// The README and operators' alert rules name log lines by event number alone: two lines with one number (in
    /// different categories) would be read as each other.
    /// </summary>
    [Fact]
    public void Every_log_event_number_is_used_once()
    {
        var events = typeof(ImagingProxyApp).Assembly.GetTypes()
            .SelectMany(t => t.GetMethods(BindingFlags.Static | BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly))
            .Select(m => (Method: m, Attribute: m.GetCustomAttribute<LoggerMessageAttribute>()))
            .Where(e => e.Attribute is not null)
            .ToList();

        Assert.NotEmpty(events);
        var shared = events.GroupBy(e => e.Attribute!.EventId)
            .Where(g => g.Count() > 1)
            .Select(g => $"{g.Key}: {string.Join(", ", g.Select(e => $"{e.Method.DeclaringType!.FullName}.{e.Method.Name}"))}")
            .ToList();
        Assert.Empty(shared);
    }
}
