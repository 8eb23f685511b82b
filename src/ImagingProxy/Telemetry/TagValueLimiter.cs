using System.Collections.Concurrent;

namespace ImagingProxy.Telemetry;

/// <summary>
/// Keeps a metric label's cardinality bounded: values on the allow-list pass as they are; without an allow-list the
/// first <c>max</c> distinct values seen pass and every later one becomes <c>other</c>. Used for AE titles and HL7
/// message types, which come from the wire. Thread-safe, allocation-free once a value is known.
/// </summary>
public sealed class TagValueLimiter
{
    public const string Other = "other";

    private readonly HashSet<string>? _allowed;
    private readonly ConcurrentDictionary<string, string> _seen = new(StringComparer.Ordinal);
    private readonly int _max;

    public TagValueLimiter(IEnumerable<string>? allowList, int max)
    {
        _allowed = allowList is null ? null : new HashSet<string>(allowList, StringComparer.Ordinal);
        if (_allowed is { Count: 0 })
        {
            _allowed = null;
        }

        _max = Math.Max(0, max);
    }

    /// <summary>
    /// The label to record for <paramref name="value"/>: itself, or <see cref="Other"/>. A value not seen before takes one
    /// of the free places only when <paramref name="admit"/> (a value that passed the proxy's own checks, such as an AE
    /// title a route matched); otherwise it is <see cref="Other"/>, so made-up values (a scanner's) cannot use them up.
    /// </summary>
    public string Limit(string? value, bool admit = true)
    {
        if (string.IsNullOrEmpty(value))
        {
            return "none";
        }

        if (_allowed is not null)
        {
            return _allowed.Contains(value) ? value : Other;
        }

        if (_seen.TryGetValue(value, out var known))
        {
            return known;
        }

        if (!admit)
        {
            return Other;
        }

        // Check-then-add under a lock: without it, concurrent first sightings could let more than max values in.
        lock (_seen)
        {
            if (_seen.TryGetValue(value, out known))
            {
                return known;
            }

            if (_seen.Count >= _max)
            {
                return Other;
            }

            _seen[value] = value;
            return value;
        }
    }
}
