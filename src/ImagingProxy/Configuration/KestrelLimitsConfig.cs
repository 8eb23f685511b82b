using System.Globalization;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Primitives;

namespace ImagingProxy.Configuration;

/// <summary>
/// <c>Kestrel:Limits</c> from configuration. ASP.NET Core reads only endpoints, certificates and endpoint defaults from
/// the <c>Kestrel</c> section (dotnet/aspnetcore#4765): without this, an operator's <c>Kestrel:Limits</c> was silently
/// ignored. Every limit starts from Kestrel's default (ImagingProxy's for <c>MaxRequestBodySize</c>: none, imaging
/// bodies are large) and takes the configured value; an unknown key or a bad value is a configuration error that names
/// its key. The limits are applied again after each applied reload; Kestrel reads them per connection or per request,
/// so they take effect for the next ones. <c>MaxConcurrentConnections</c> and <c>MaxConcurrentUpgradedConnections</c>
/// are the exception: Kestrel fixes them when an endpoint binds, and the DICOM and MLLP listeners are never rebound, so
/// they are read at start-up only (<see cref="StartupBoundSettings"/> rejects a reload that changes them).
/// </summary>
public static class KestrelLimitsConfig
{
    /// <summary>The configuration section.</summary>
    public const string SectionPath = "Kestrel:Limits";

    private static readonly Limit[] s_limits =
    [
        new("KeepAliveTimeout", (from, to) => to.KeepAliveTimeout = from.KeepAliveTimeout, (v, l) => l.KeepAliveTimeout = Time(v)),
        new("RequestHeadersTimeout", (from, to) => to.RequestHeadersTimeout = from.RequestHeadersTimeout, (v, l) => l.RequestHeadersTimeout = Time(v)),
        new("MaxConcurrentConnections", (from, to) => to.MaxConcurrentConnections = from.MaxConcurrentConnections, (v, l) => l.MaxConcurrentConnections = OptionalCount(v)),
        new("MaxConcurrentUpgradedConnections", (from, to) => to.MaxConcurrentUpgradedConnections = from.MaxConcurrentUpgradedConnections, (v, l) => l.MaxConcurrentUpgradedConnections = OptionalCount(v)),
        new("MaxRequestBodySize", (from, to) => to.MaxRequestBodySize = from.MaxRequestBodySize, (v, l) => l.MaxRequestBodySize = OptionalCount(v)),
        new("MaxRequestBufferSize", (from, to) => to.MaxRequestBufferSize = from.MaxRequestBufferSize, (v, l) => l.MaxRequestBufferSize = OptionalCount(v)),
        new("MaxResponseBufferSize", (from, to) => to.MaxResponseBufferSize = from.MaxResponseBufferSize, (v, l) => l.MaxResponseBufferSize = OptionalCount(v)),
        new("MaxRequestHeaderCount", (from, to) => to.MaxRequestHeaderCount = from.MaxRequestHeaderCount, (v, l) => l.MaxRequestHeaderCount = Size(v)),
        new("MaxRequestHeadersTotalSize", (from, to) => to.MaxRequestHeadersTotalSize = from.MaxRequestHeadersTotalSize, (v, l) => l.MaxRequestHeadersTotalSize = Size(v)),
        new("MaxRequestLineSize", (from, to) => to.MaxRequestLineSize = from.MaxRequestLineSize, (v, l) => l.MaxRequestLineSize = Size(v)),
        new("Http2:MaxStreamsPerConnection", (from, to) => to.Http2.MaxStreamsPerConnection = from.Http2.MaxStreamsPerConnection, (v, l) => l.Http2.MaxStreamsPerConnection = Size(v)),
        new("Http2:HeaderTableSize", (from, to) => to.Http2.HeaderTableSize = from.Http2.HeaderTableSize, (v, l) => l.Http2.HeaderTableSize = Size(v)),
        new("Http2:MaxFrameSize", (from, to) => to.Http2.MaxFrameSize = from.Http2.MaxFrameSize, (v, l) => l.Http2.MaxFrameSize = Size(v)),
        new("Http2:MaxRequestHeaderFieldSize", (from, to) => to.Http2.MaxRequestHeaderFieldSize = from.Http2.MaxRequestHeaderFieldSize, (v, l) => l.Http2.MaxRequestHeaderFieldSize = Size(v)),
        new("Http2:InitialConnectionWindowSize", (from, to) => to.Http2.InitialConnectionWindowSize = from.Http2.InitialConnectionWindowSize, (v, l) => l.Http2.InitialConnectionWindowSize = Size(v)),
        new("Http2:InitialStreamWindowSize", (from, to) => to.Http2.InitialStreamWindowSize = from.Http2.InitialStreamWindowSize, (v, l) => l.Http2.InitialStreamWindowSize = Size(v)),
        new("Http2:KeepAlivePingDelay", (from, to) => to.Http2.KeepAlivePingDelay = from.Http2.KeepAlivePingDelay, (v, l) => l.Http2.KeepAlivePingDelay = Time(v)),
        new("Http2:KeepAlivePingTimeout", (from, to) => to.Http2.KeepAlivePingTimeout = from.Http2.KeepAlivePingTimeout, (v, l) => l.Http2.KeepAlivePingTimeout = Time(v)),
    ];

    // MinRequestBodyDataRate and MinResponseDataRate are objects (BytesPerSecond, GracePeriod); BytesPerSecond 0 turns one off.
    private static readonly string[] s_dataRates = ["MinRequestBodyDataRate", "MinResponseDataRate"];

    /// <summary>ImagingProxy's starting point: Kestrel's defaults, except no global request body cap.</summary>
    public static KestrelServerLimits Defaults() => new() { MaxRequestBodySize = null };

    /// <summary>
    /// The limits in effect with <paramref name="limits"/> (the <c>Kestrel:Limits</c> section): the configured values,
    /// defaults where a key is absent; a value that does not parse keeps the default (<see cref="Validate"/> names it).
    /// </summary>
    internal static KestrelServerLimits Effective(IConfigurationSection limits) => Read(limits, []);

    /// <summary>The problems of <paramref name="limits"/> (the <c>Kestrel:Limits</c> section), each naming its key.</summary>
    public static IReadOnlyList<string> Validate(IConfigurationSection limits)
    {
        var errors = new List<string>();
        var read = Read(limits, errors);

        // Kestrel's own start-up check (KestrelServerImpl.ValidateOptions): the request buffer holds a whole request
        // line and all headers. It throws when a server starts, and a reload applies limits without it.
        if (read.MaxRequestBufferSize is { } buffer)
        {
            if (buffer < read.MaxRequestLineSize)
            {
                errors.Add($"{limits.Path}:MaxRequestBufferSize: {buffer} is smaller than MaxRequestLineSize ({read.MaxRequestLineSize}); Kestrel requires the buffer to hold a request line.");
            }

            if (buffer < read.MaxRequestHeadersTotalSize)
            {
                errors.Add($"{limits.Path}:MaxRequestBufferSize: {buffer} is smaller than MaxRequestHeadersTotalSize ({read.MaxRequestHeadersTotalSize}); Kestrel requires the buffer to hold all request headers.");
            }
        }

        return errors;
    }

    /// <summary>
    /// Sets <paramref name="target"/> from <paramref name="limits"/> (the <c>Kestrel:Limits</c> section of the validated
    /// configuration) now and again after every reload of that configuration.
    /// </summary>
    /// <returns>The reload subscription.</returns>
    public static IDisposable Bind(IConfigurationSection limits, KestrelServerLimits target)
    {
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(target);
        Apply(limits, target);
        return ChangeToken.OnChange(limits.GetReloadToken, () => Apply(limits, target));
    }

    /// <summary>Copies the configured limits (defaults where a key is absent) onto <paramref name="target"/>; values already validated.</summary>
    public static void Apply(IConfigurationSection limits, KestrelServerLimits target)
    {
        var errors = new List<string>();
        var read = Read(limits, errors);
        if (errors.Count > 0)
        {
            // The gate validates before a configuration is applied; this is only reached if it was bypassed.
            throw new InvalidConfigurationException(errors);
        }

        foreach (var limit in s_limits)
        {
            limit.Copy(read, target);
        }

        target.MinRequestBodyDataRate = read.MinRequestBodyDataRate;
        target.MinResponseDataRate = read.MinResponseDataRate;
    }

    private static KestrelServerLimits Read(IConfigurationSection section, List<string> errors)
    {
        var limits = Defaults();
        foreach (var child in section.GetChildren())
        {
            if (child.Key.Equals("Http2", StringComparison.OrdinalIgnoreCase))
            {
                foreach (var http2 in child.GetChildren())
                {
                    Set(limits, $"Http2:{http2.Key}", http2, errors);
                }
            }
            else if (Array.FindIndex(s_dataRates, name => name.Equals(child.Key, StringComparison.OrdinalIgnoreCase)) is var rate and >= 0)
            {
                var value = DataRate(child, errors);
                if (rate == 0)
                {
                    limits.MinRequestBodyDataRate = value;
                }
                else
                {
                    limits.MinResponseDataRate = value;
                }
            }
            else
            {
                Set(limits, child.Key, child, errors);
            }
        }

        return limits;
    }

    private static void Set(KestrelServerLimits limits, string key, IConfigurationSection value, List<string> errors)
    {
        var limit = Array.Find(s_limits, l => l.Key.Equals(key, StringComparison.OrdinalIgnoreCase));
        if (limit is null)
        {
            errors.Add($"{value.Path}: unknown limit (known: {string.Join(", ", Known())}).");
            return;
        }

        try
        {
            limit.Set(value.Value ?? string.Empty, limits);
        }
        catch (Exception ex) when (ex is FormatException or ArgumentOutOfRangeException or OverflowException)
        {
            errors.Add($"{value.Path}: '{value.Value}' is not valid here ({FirstLine(ex.Message)}).");
        }
    }

    private static MinDataRate? DataRate(IConfigurationSection section, List<string> errors)
    {
        if (string.IsNullOrEmpty(section.Value) && !section.GetChildren().Any())
        {
            return null; // "MinRequestBodyDataRate": null turns the limit off
        }

        var bytes = section["BytesPerSecond"];
        if (string.IsNullOrEmpty(bytes) || !double.TryParse(bytes, NumberStyles.Float, CultureInfo.InvariantCulture, out var perSecond) || perSecond < 0)
        {
            errors.Add($"{section.Path}:BytesPerSecond: '{bytes}' is not a number of bytes per second (0 turns the limit off).");
            return null;
        }

        if (perSecond == 0)
        {
            return null;
        }

        var grace = TimeSpan.FromSeconds(5);
        var graceText = section["GracePeriod"];
        if (!string.IsNullOrEmpty(graceText)
            && (!TimeSpan.TryParse(graceText, CultureInfo.InvariantCulture, out grace) || grace <= TimeSpan.Zero || ConfigurationValidator.BareNumber(graceText) is not null))
        {
            var bare = ConfigurationValidator.BareNumber(graceText);
            errors.Add($"{section.Path}:GracePeriod: '{graceText}' is not a positive time span (hh:mm:ss){(bare is null ? string.Empty : "; " + bare)}.");
            return null;
        }

        try
        {
            return new MinDataRate(perSecond, grace);
        }
        catch (ArgumentOutOfRangeException ex)
        {
            errors.Add($"{section.Path}: {FirstLine(ex.Message)}");
            return null;
        }
    }

    private static IEnumerable<string> Known()
    {
        foreach (var limit in s_limits)
        {
            yield return limit.Key;
        }

        foreach (var rate in s_dataRates)
        {
            yield return rate;
        }
    }

    /// <summary>A time limit; a bare number is refused as for every other time setting (<see cref="ConfigurationValidator.BareNumber"/>).</summary>
    private static TimeSpan Time(string value)
        => ConfigurationValidator.BareNumber(value) is { } bare
            ? throw new FormatException($"a time span is hh:mm:ss or d.hh:mm:ss; {bare}")
            : TimeSpan.Parse(value, CultureInfo.InvariantCulture);

    private static int Size(string value) => int.Parse(value, NumberStyles.Integer, CultureInfo.InvariantCulture);

    /// <summary>A count or size that Kestrel allows to be unlimited: empty or -1 means no limit (as a route's MaxRequestBodySize -1).</summary>
    private static long? OptionalCount(string value)
        => value.Length == 0 || value == "-1" ? null : long.Parse(value, NumberStyles.Integer, CultureInfo.InvariantCulture);

    private static string FirstLine(string message)
    {
        var end = message.IndexOfAny(['\r', '\n']);
        return end < 0 ? message : message[..end];
    }

    private sealed record Limit(string Key, Action<KestrelServerLimits, KestrelServerLimits> Copy, Action<string, KestrelServerLimits> Set);
}
