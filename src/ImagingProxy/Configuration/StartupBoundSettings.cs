using System.Globalization;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Configuration;

/// <summary>
/// The settings the process reads once, when it starts: the set of Kestrel endpoints and of DICOM and MLLP listeners,
/// a listener's address, port and whether it speaks TLS, <c>DrainTimeout</c>, <c>InlineScheduling</c> and
/// <c>Telemetry</c>. A reload that changes one of them is rejected like an invalid one, each change named, instead of
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

                SameText(old, listener, "Address", problems);
                SameNumber(old, listener, "Port", 0, problems);
                if (string.IsNullOrEmpty(old["Tls:Path"]) != string.IsNullOrEmpty(listener["Tls:Path"]))
                {
                    problems.Add($"{listener.Path}:Tls: turning TLS on or off is {Restart}.");
                }
            }
        }

        var proxyBefore = startup.GetSection(ImagingProxyOptions.SectionName);
        var proxyAfter = candidate.GetSection(ImagingProxyOptions.SectionName);
        SameTime(proxyBefore, proxyAfter, "DrainTimeout", problems);
        SameText(proxyBefore, proxyAfter, "InlineScheduling", problems);
        SameSection(proxyBefore.GetSection("Telemetry"), proxyAfter.GetSection("Telemetry"), problems);
        return problems;
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

    private static void SameText(IConfigurationSection before, IConfigurationSection after, string key, List<string> problems)
    {
        var old = before[key]?.Trim();
        var now = after[key]?.Trim();
        if (!string.Equals(old, now, StringComparison.OrdinalIgnoreCase))
        {
            Changed(after, key, old, problems);
        }
    }

    private static void SameNumber(IConfigurationSection before, IConfigurationSection after, string key, long fallback, List<string> problems)
    {
        if (Number(before[key], fallback) != Number(after[key], fallback))
        {
            Changed(after, key, before[key], problems);
        }
    }

    private static void SameTime(IConfigurationSection before, IConfigurationSection after, string key, List<string> problems)
    {
        if (Time(before[key]) != Time(after[key]))
        {
            Changed(after, key, before[key], problems);
        }
    }

    private static void SameSection(IConfigurationSection before, IConfigurationSection after, List<string> problems)
    {
        var old = Flatten(before);
        var now = Flatten(after);
        var same = old.Count == now.Count;
        foreach (var (key, value) in now)
        {
            same &= old.TryGetValue(key, out var previous) && string.Equals(previous, value, StringComparison.Ordinal);
        }

        if (!same)
        {
            problems.Add($"{after.Path}: {Restart}.");
        }
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
