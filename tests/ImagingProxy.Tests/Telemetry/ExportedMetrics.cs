using System.Diagnostics.Metrics;
using System.Text.RegularExpressions;
using ImagingProxy.Telemetry;

namespace ImagingProxy.Tests.Telemetry;

/// <summary>
/// What the proxy exports: metric families parsed from a real /metrics scrape, and the Prometheus names of every
/// instrument on the ImagingProxy meter (seen with a <see cref="MeterListener"/>), named by the exporter's rules
/// (yarp-notes.md §10) — rules the test checks against the scrape for every instrument that has data.
/// </summary>
internal sealed partial class ExportedMetrics : IDisposable
{
    private readonly MeterListener _listener = new();
    private readonly Dictionary<string, Instrument> _instruments = new(StringComparer.Ordinal);

    public ExportedMetrics()
    {
        _listener.InstrumentPublished = (instrument, _) =>
        {
            if (instrument.Meter.Name == ImagingProxyTelemetry.MeterName)
            {
                lock (_instruments)
                {
                    _instruments[instrument.Name] = instrument;
                }
            }
        };
        _listener.Start();
    }

    /// <summary>Instrument name → Prometheus family name.</summary>
    public IReadOnlyDictionary<string, string> InstrumentFamilies()
    {
        lock (_instruments)
        {
            return _instruments.Values.ToDictionary(i => i.Name, PrometheusName, StringComparer.Ordinal);
        }
    }

    public IReadOnlyDictionary<string, Instrument> Instruments()
    {
        lock (_instruments)
        {
            return new Dictionary<string, Instrument>(_instruments, StringComparer.Ordinal);
        }
    }

    /// <summary>The families of a Prometheus text exposition, from its <c># TYPE</c> lines.</summary>
    public static Dictionary<string, string> ParseFamilies(string exposition)
    {
        var families = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (Match match in TypeLine().Matches(exposition))
        {
            families[match.Groups["name"].Value] = match.Groups["type"].Value;
        }

        return families;
    }

    /// <summary>The OpenTelemetry Prometheus exporter's name for an instrument.</summary>
    public static string PrometheusName(Instrument instrument)
    {
        var name = NotAllowed().Replace(instrument.Name, "_");
        var unit = instrument.Unit switch
        {
            null or "" => null,
            var u when u.StartsWith('{') => null,
            "s" => "seconds",
            "ms" => "milliseconds",
            "By" => "bytes",
            "1" => null,
            var u => NotAllowed().Replace(u, "_"),
        };
        if (unit is not null && !name.EndsWith("_" + unit, StringComparison.Ordinal))
        {
            name += "_" + unit;
        }

        var type = instrument.GetType();
        var monotonic = type.IsGenericType && (type.GetGenericTypeDefinition() == typeof(Counter<>) || type.GetGenericTypeDefinition() == typeof(ObservableCounter<>));
        if (monotonic && !name.EndsWith("_total", StringComparison.Ordinal))
        {
            name += "_total";
        }

        return name;
    }

    public void Dispose() => _listener.Dispose();

    [GeneratedRegex(@"^# TYPE (?<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (?<type>\w+)$", RegexOptions.Multiline)]
    private static partial Regex TypeLine();

    [GeneratedRegex("[^a-zA-Z0-9_:]")]
    private static partial Regex NotAllowed();
}
