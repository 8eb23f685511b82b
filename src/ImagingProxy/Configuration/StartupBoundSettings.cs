using System.Globalization;
using System.Net;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Configuration;

/// <summary>
/// The settings the process reads once, when it starts: the set of Kestrel endpoints and of DICOM and MLLP listeners,
/// a listener's address, port and whether it speaks TLS, <c>DrainTimeout</c>, <c>InlineScheduling</c>,
/// <c>Telemetry</c>, <c>Kestrel:Limits</c> <c>MaxConcurrentConnections</c> and <c>MaxConcurrentUpgradedConnections</c>
/// (Kestrel fixes them when an endpoint binds), and with a TLS listener <c>Kestrel:EndpointDefaults</c>
/// <c>SslProtocols</c> and <c>ClientCertificateMode</c>. A reload that changes one of them is rejected like an invalid one, each change named, instead of
/// being shown as applied while the old value keeps running; it applies at the next start.
/// </summary>
public static class StartupBoundSettings
{
    private const string Restart = "read at start-up; the change applies after a restart";

    /// <summary>What <paramref name="candidate"/> changes, against <paramref name="startup"/>, that needs a restart.</summary>
    public static List<string> Changes(IConfiguration startup, IConfiguration candidate)
    {
        var problems = new List<string>();
        SameNames(startup.GetSection("Kestrel:Endpoints"), candidate.GetSection("Kestrel:Endpoints"), "endpoint", problems);
        foreach (var kind in (string[])["Dicom", "Mllp"])
        {
            var before = startup.GetSection($"{ImagingProxyOptions.SectionName}:{kind}:Listeners");
            var after = candidate.GetSection($"{ImagingProxyOptions.SectionName}:{kind}:Listeners");
            SameNames(before, after, "listener", problems);
            foreach (var listener in after.GetChildren())
            {
                var old = before.GetSection(listener.Key);
                if (!old.Exists())
                {
                    continue;
                }

                SameAddress(old, listener, problems);
                SameNumber(old, listener, "Port", 0, problems);
                if (string.IsNullOrEmpty(old["Tls:Path"]) != string.IsNullOrEmpty(listener["Tls:Path"]))
                {
                    problems.Add($"{listener.Path}:Tls: turning TLS on or off is {Restart}.");
                }
            }
        }

        if (HasTlsListener(startup))
        {
            // Read once for the DICOM and MLLP TLS listeners (RawListenerBinder), which are never rebound.
            foreach (var key in (string[])["SslProtocols", "ClientCertificateMode"])
            {
                var path = $"Kestrel:EndpointDefaults:{key}";
                SameSection(startup.GetSection(path), candidate.GetSection(path), problems, " for the DICOM and MLLP TLS listeners");
            }
        }

        var proxyBefore = startup.GetSection(ImagingProxyOptions.SectionName);
        var proxyAfter = candidate.GetSection(ImagingProxyOptions.SectionName);
        SameTime(proxyBefore, proxyAfter, "DrainTimeout", ProxyDefaults.DrainTimeout, problems);
        if (Inline(proxyBefore["InlineScheduling"]) != Inline(proxyAfter["InlineScheduling"]))
        {
            Changed(proxyAfter, "InlineScheduling", proxyBefore["InlineScheduling"] ?? "true", problems);
        }

        if (Number(proxyBefore["SocketEngines"], 0) != Number(proxyAfter["SocketEngines"], 0))
        {
            Changed(proxyAfter, "SocketEngines", proxyBefore["SocketEngines"] ?? "the runtime's default", problems);
        }

        SameSection(proxyBefore.GetSection("Telemetry"), proxyAfter.GetSection("Telemetry"), problems);
        SameBindLimits(startup.GetSection(KestrelLimitsConfig.SectionPath), candidate.GetSection(KestrelLimitsConfig.SectionPath), problems);
        return problems;
    }

    /// <summary>
    /// The limits Kestrel fixes when an endpoint binds: the DICOM and MLLP listeners are never rebound, an HTTP endpoint
    /// only when its own configuration changes. Compared by the value in effect (absent is Kestrel's default).
    /// </summary>
    private static void SameBindLimits(IConfigurationSection before, IConfigurationSection after, List<string> problems)
    {
        var running = KestrelLimitsConfig.Effective(before);
        var next = KestrelLimitsConfig.Effective(after);
        if (running.MaxConcurrentConnections != next.MaxConcurrentConnections)
        {
            Changed(after, nameof(running.MaxConcurrentConnections), Limit(running.MaxConcurrentConnections), problems);
        }

        if (running.MaxConcurrentUpgradedConnections != next.MaxConcurrentUpgradedConnections)
        {
            Changed(after, nameof(running.MaxConcurrentUpgradedConnections), Limit(running.MaxConcurrentUpgradedConnections), problems);
        }

        static string Limit(long? value) => value?.ToString(CultureInfo.InvariantCulture) ?? "-1";
    }

    private static void SameNames(IConfigurationSection before, IConfigurationSection after, string what, List<string> problems)
    {
        foreach (var child in after.GetChildren())
        {
            if (!before.GetSection(child.Key).Exists())
            {
                problems.Add($"{child.Path}: a new {what} is {Restart}.");
            }
        }

        foreach (var child in before.GetChildren())
        {
            if (!after.GetSection(child.Key).Exists())
            {
                problems.Add($"{after.Path}:{child.Key}: removing {Article(what)} is {Restart}.");
            }
        }
    }

    private static string Article(string what) => (what[0] is 'a' or 'e' or 'i' or 'o' or 'u' ? "an " : "a ") + what;

    /// <summary>The address a listener binds (RawListenerBinder): none or one that does not parse is every IPv4 address.</summary>
    private static void SameAddress(IConfigurationSection before, IConfigurationSection after, List<string> problems)
    {
        if (!Equals(Bound(before["Address"]), Bound(after["Address"])))
        {
            Changed(after, "Address", before["Address"], problems);
        }

        static IPAddress Bound(string? text)
            => !string.IsNullOrEmpty(text) && ConfigurationValidator.TryParseListenAddress(text, out var address) && address is not null ? address : IPAddress.Any;
    }

    /// <summary>Inline scheduling is on unless the setting is <c>false</c> (ImagingProxyApp).</summary>
    private static bool Inline(string? text) => !string.Equals(text, "false", StringComparison.OrdinalIgnoreCase);

    private static void SameNumber(IConfigurationSection before, IConfigurationSection after, string key, long fallback, List<string> problems)
    {
        if (Number(before[key], fallback) != Number(after[key], fallback))
        {
            Changed(after, key, before[key], problems);
        }
    }

    private static void SameTime(IConfigurationSection before, IConfigurationSection after, string key, TimeSpan fallback, List<string> problems)
    {
        if ((Time(before[key]) ?? fallback) != (Time(after[key]) ?? fallback))
        {
            Changed(after, key, before[key] ?? fallback.ToString("c", CultureInfo.InvariantCulture), problems);
        }
    }

    private static void SameSection(IConfigurationSection before, IConfigurationSection after, List<string> problems, string why = "")
    {
        if (!ConfigurationGate.SameAs(Flatten(before), Flatten(after)))
        {
            problems.Add($"{after.Path}: {Restart}{why}.");
        }
    }

    private static bool HasTlsListener(IConfiguration configuration)
    {
        foreach (var kind in (string[])["Dicom", "Mllp"])
        {
            foreach (var listener in configuration.GetSection($"{ImagingProxyOptions.SectionName}:{kind}:Listeners").GetChildren())
            {
                if (!string.IsNullOrEmpty(listener["Tls:Path"]))
                {
                    return true;
                }
            }
        }

        return false;
    }

    private static void Changed(IConfigurationSection after, string key, string? old, List<string> problems)
        => problems.Add($"{after.Path}:{key}: {Restart} (running with '{old}').");

    private static long Number(string? text, long fallback)
        => long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out var value) ? value : fallback;

    private static TimeSpan? Time(string? text)
        => TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var value) ? value : null;

    private static Dictionary<string, string?> Flatten(IConfigurationSection section)
    {
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        if (section.Value is { } own)
        {
            values[string.Empty] = own; // a value of its own (AsEnumerable leaves the section itself out)
        }

        foreach (var pair in section.AsEnumerable(makePathsRelative: true))
        {
            if (pair.Value is not null)
            {
                values[pair.Key] = pair.Value;
            }
        }

        return values;
    }
}
