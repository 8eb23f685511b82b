using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace ImagingProxy.Configuration;

/// <summary>
/// Watches the raw, layered configuration (appsettings.json, --config file, environment, command line), validates
/// each change as a whole and copies it into <see cref="LastGoodConfigurationProvider"/> only when it is valid.
/// A bad reload is logged with every problem and the last good configuration keeps serving.
/// </summary>
public sealed partial class ConfigurationGate : IDisposable
{
    /// <summary>The sections the gate guards; everything else (Logging ...) is read live.</summary>
    public static readonly string[] GuardedSections = ["ReverseProxy", ImagingProxyOptions.SectionName, "Kestrel"];

    private readonly IConfiguration _raw;
    private readonly LastGoodConfigurationProvider _lastGood = new();
    private readonly TimeProvider _time;
    private readonly Lock _lock = new();
    private readonly List<IConfigurationAcceptance> _acceptances = [];
    private IDisposable? _subscription;
    private ILogger _logger;
    private Dictionary<string, string?> _current = new(StringComparer.OrdinalIgnoreCase);
    private IConfiguration _accepted = new ConfigurationBuilder().Build();
    private readonly LastGoodConfigurationProvider _committed = new();

    /// <summary>The content of the rejection in force (null: a file did not parse), and whether the last attempt repeated it.</summary>
    private Dictionary<string, string?>? _rejectedSnapshot;
    private bool _repeated;
    private IConfiguration? _startup;

    public ConfigurationGate(IConfiguration raw, TimeProvider? time = null)
    {
        _raw = raw;
        _time = time ?? TimeProvider.System;
        _logger = Microsoft.Extensions.Logging.Abstractions.NullLogger.Instance;
        Configuration = new ConfigurationBuilder().Add(_lastGood).Build();
        Committed = new ConfigurationBuilder().Add(_committed).Build();
    }

    /// <summary>The validated configuration every feature reads.</summary>
    public IConfigurationRoot Configuration { get; }

    /// <summary>
    /// The last change applied and taken by every <see cref="IConfigurationAcceptance"/>, as a snapshot of its own (a new
    /// object per applied change, never modified): for readers that bind their settings lazily on connection threads (the
    /// DICOM and MLLP settings). <see cref="Configuration"/> holds a change while YARP judges it (a change YARP refuses is
    /// there until it is rolled back), and a reload replaces its keys under a reader that is binding them.
    /// </summary>
    public IConfiguration Accepted => Volatile.Read(ref _accepted);

    /// <summary>
    /// The last change applied and taken by every <see cref="IConfigurationAcceptance"/>, for readers that follow reloads
    /// through its reload token (Kestrel's endpoints and limits, the TLS listeners' certificates): it fires once per
    /// accepted change, never for one YARP refuses. A change goes through <see cref="Configuration"/> while YARP judges
    /// it, and Kestrel following that one moved an endpoint to a refused address and back, cutting its connections.
    /// </summary>
    public IConfigurationRoot Committed { get; }

    /// <summary>Number of configurations applied so far (1 after start-up).</summary>
    public int Generation { get; private set; }

    public DateTimeOffset? AppliedAt { get; private set; }

    /// <summary>The problems of the last rejected reload, if the newest edit was rejected.</summary>
    public IReadOnlyList<string> LastRejection { get; private set; } = [];

    public DateTimeOffset? RejectedAt { get; private set; }

    /// <summary>Reloads rejected since the start (a file that did not parse, a problem found, a change YARP refused).</summary>
    public int Rejections { get; private set; }

    /// <summary>Raised after each reload attempt, with the problems found (empty when applied).</summary>
    public event Action<IReadOnlyList<string>>? ReloadAttempted;

    /// <summary>Validates the current raw configuration and applies it; the start-up check.</summary>
    /// <exception cref="InvalidConfigurationException">The configuration has problems; every one is listed.</exception>
    public void ApplyInitial()
    {
        var errors = TryApply(out _);
        if (errors.Count > 0)
        {
            throw new InvalidConfigurationException(errors);
        }
    }

    /// <summary>
    /// Adds a reader that can still refuse a change after <see cref="ConfigurationValidator"/> passed it (YARP): a change
    /// it refuses is rolled back and reported like one the validator rejected.
    /// </summary>
    public void AddAcceptance(IConfigurationAcceptance acceptance)
    {
        lock (_lock)
        {
            _acceptances.Add(acceptance);
        }
    }

    /// <summary>Starts following reloads of the raw configuration.</summary>
    public void StartWatching(ILogger logger)
    {
        _logger = logger;
        lock (_lock)
        {
            // After a restart too, the log says which destinations an operator keeps out of rotation.
            if (DrainChanges([], _current).Drained is { Count: > 0 } drained)
            {
                Log.DestinationsDraining(_logger, string.Join(", ", drained));
            }
        }

        _subscription = ChangeToken.OnChange(_raw.GetReloadToken, OnRawReload);
    }

    private void OnRawReload()
    {
        IReadOnlyList<string> errors;
        var repeated = false;
        try
        {
            errors = TryApply(out repeated);
        }
        catch (Exception ex)
        {
            errors = [$"configuration could not be read: {ex.Message}"];
        }

        if (errors.Count > 0 && !repeated)
        {
            Log.ReloadRejected(_logger, errors.Count, string.Join(Environment.NewLine, errors));
        }

        ReloadAttempted?.Invoke(errors);
    }

    private IReadOnlyList<string> TryApply(out bool repeated)
    {
        lock (_lock)
        {
            var errors = TryApplyLocked();
            repeated = _repeated;
            return errors;
        }
    }

    /// <summary>The reload attempt itself, under the lock.</summary>
    private IReadOnlyList<string> TryApplyLocked()
    {
        _repeated = false;
        // A file that did not parse keeps its last parsed content in the raw configuration: nothing is judged until
        // it parses again, whichever source changed.
        var loadErrors = LoadErrors(_raw);
        if (loadErrors.Count > 0)
        {
            return Rejected(loadErrors);
        }

        var snapshot = Snapshot(_raw);
        if (Generation > 0 && SameAs(snapshot, _current))
        {
            // Nothing to apply; an edit rejected before is no longer pending (the file was put back as it runs).
            if (RejectedAt is not null)
            {
                Log.RejectionWithdrawn(_logger, Generation);
            }

            LastRejection = [];
            RejectedAt = null;
            return [];
        }

        // Judged as it would run: without the Kestrel endpoints it turns off (Enabled: false).
        var candidate = new ConfigurationBuilder().AddInMemoryCollection(snapshot).Build();
        var errors = ConfigurationValidator.Validate(candidate);
        if (errors.Count == 0 && _startup is not null)
        {
            errors = StartupBoundSettings.Changes(_startup, candidate);
        }

        if (errors.Count == 0 && _startup is not null)
        {
            errors = EndpointBindCheck.Problems(new ConfigurationBuilder().AddInMemoryCollection(_current).Build(), candidate);
        }

        if (errors.Count > 0)
        {
            return Rejected(errors, snapshot);
        }

        var previous = _current;
        _current = snapshot;
        errors = Replace(snapshot);
        if (errors.Count > 0)
        {
            // Refused downstream: everyone goes back to the previous configuration, so that the DICOM and MLLP
            // tables never point at clusters YARP kept out (they saw the change for the moment it took).
            _current = previous;
            Replace(previous);
            return Rejected(errors, snapshot);
        }

        LastRejection = [];
        RejectedAt = null;
        Volatile.Write(ref _accepted, new ConfigurationBuilder().AddInMemoryCollection(snapshot).Build());
        _committed.Replace(snapshot);
        _startup ??= new ConfigurationBuilder().AddInMemoryCollection(snapshot).Build();
        Generation++;
        AppliedAt = _time.GetUtcNow();
        if (Generation > 1)
        {
            Log.ReloadApplied(_logger, Generation);
            if (ChangedEndpoints(previous, snapshot) is { Count: > 0 } rebound)
            {
                Log.EndpointsRebound(_logger, string.Join(", ", rebound));
            }

            var (drained, undrained) = DrainChanges(previous, snapshot);
            if (drained.Count > 0)
            {
                Log.DestinationsDraining(_logger, string.Join(", ", drained));
            }

            if (undrained.Count > 0)
            {
                Log.DestinationsUndrained(_logger, string.Join(", ", undrained));
            }
        }

        return [];
    }

    /// <summary>
    /// The Kestrel endpoints (names, sorted) Kestrel rebinds between the two configurations: those with a setting of their
    /// own that differs, and every one when <c>Kestrel:EndpointDefaults</c> or <c>Kestrel:Certificates</c> differ.
    /// </summary>
    internal static List<string> ChangedEndpoints(Dictionary<string, string?> before, Dictionary<string, string?> after)
    {
        const string prefix = "Kestrel:Endpoints:";
        var changed = new SortedSet<string>(StringComparer.OrdinalIgnoreCase);
        var all = new SortedSet<string>(StringComparer.OrdinalIgnoreCase);
        var shared = false;
        foreach (var key in new HashSet<string>(before.Keys.Concat(after.Keys), StringComparer.OrdinalIgnoreCase))
        {
            var differs = !string.Equals(before.GetValueOrDefault(key), after.GetValueOrDefault(key), StringComparison.Ordinal)
                || before.ContainsKey(key) != after.ContainsKey(key);
            if (key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) && key.IndexOf(':', prefix.Length) is var end and > 0)
            {
                var name = key[prefix.Length..end];
                all.Add(name);
                if (differs)
                {
                    changed.Add(name);
                }
            }
            else if (differs && (key.StartsWith("Kestrel:EndpointDefaults:", StringComparison.OrdinalIgnoreCase) || key.StartsWith("Kestrel:Certificates:", StringComparison.OrdinalIgnoreCase)))
            {
                shared = true;
            }
        }

        return shared ? [.. all] : [.. changed];
    }

    /// <summary>
    /// The destinations (<c>cluster/destination</c>, sorted) whose metadata <c>Drain</c> turned true, and those that
    /// were draining and are back in rotation (the key false or gone, the destination still configured).
    /// </summary>
    internal static (List<string> Drained, List<string> Undrained) DrainChanges(Dictionary<string, string?> before, Dictionary<string, string?> after)
    {
        var drained = new SortedSet<string>(StringComparer.Ordinal);
        var undrained = new SortedSet<string>(StringComparer.Ordinal);
        foreach (var (key, value) in after)
        {
            if (DrainKey(key) is { } name && IsTrue(value) && !IsTrue(before.GetValueOrDefault(key)))
            {
                drained.Add(name);
            }
        }

        foreach (var (key, value) in before)
        {
            if (DrainKey(key) is { } name && IsTrue(value) && !IsTrue(after.GetValueOrDefault(key))
                && after.ContainsKey(key[..key.LastIndexOf(":Metadata:", StringComparison.OrdinalIgnoreCase)] + ":Address"))
            {
                undrained.Add(name);
            }
        }

        return ([.. drained], [.. undrained]);

        static bool IsTrue(string? text) => bool.TryParse(text, out var value) && value;
    }

    /// <summary><c>cluster/destination</c> for a key <c>ReverseProxy:Clusters:C:Destinations:D:Metadata:Drain</c>, else null.</summary>
    private static string? DrainKey(string key)
    {
        const string prefix = "ReverseProxy:Clusters:";
        const string suffix = ":Metadata:" + MetadataKeys.Drain;
        if (!key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || !key.EndsWith(suffix, StringComparison.OrdinalIgnoreCase))
        {
            return null;
        }

        var parts = key[prefix.Length..^suffix.Length].Split(':');
        return parts.Length == 3 && string.Equals(parts[1], "Destinations", StringComparison.OrdinalIgnoreCase) ? parts[0] + "/" + parts[2] : null;
    }

    /// <summary>Makes <paramref name="snapshot"/> the last good configuration; the problems readers found with it.</summary>
    private List<string> Replace(Dictionary<string, string?> snapshot)
    {
        foreach (var acceptance in _acceptances)
        {
            acceptance.Begin();
        }

        _lastGood.Replace(snapshot);
        var problems = new List<string>();
        foreach (var acceptance in _acceptances)
        {
            problems.AddRange(acceptance.End());
        }

        return problems;
    }

    /// <summary>
    /// Records a rejected reload (under the lock) and returns its problems. The same edit seen again (the same problems
    /// for the same content, <paramref name="snapshot"/>; null when a file did not parse) is a repeat, neither counted
    /// nor logged again: one save can reach the file watcher as two changes.
    /// </summary>
    private IReadOnlyList<string> Rejected(IReadOnlyList<string> errors, Dictionary<string, string?>? snapshot = null)
    {
        _repeated = RejectedAt is not null && errors.SequenceEqual(LastRejection, StringComparer.Ordinal)
            && (snapshot is null ? _rejectedSnapshot is null : _rejectedSnapshot is not null && SameAs(snapshot, _rejectedSnapshot));
        _rejectedSnapshot = snapshot;
        LastRejection = errors;
        if (!_repeated)
        {
            RejectedAt = _time.GetUtcNow();
            Rejections++;
        }

        return errors;
    }

    /// <summary>The errors of the raw configuration's sources whose last load failed (<see cref="IConfigurationLoadError"/>).</summary>
    private static List<string> LoadErrors(IConfiguration raw)
        => raw is IConfigurationRoot root
            ? root.Providers.OfType<IConfigurationLoadError>().Select(p => p.LoadError).OfType<string>().ToList()
            : [];

    /// <summary>
    /// The guarded sections, flattened, without the Kestrel endpoints turned off (<c>Kestrel:Endpoints:NAME:Enabled</c>
    /// <c>false</c>): a layer cannot delete an endpoint the host's appsettings.json defines, so an operator turns it off,
    /// and then nothing reads it (Kestrel binds no socket for it, it needs no certificate).
    /// </summary>
    internal static Dictionary<string, string?> Snapshot(IConfiguration raw)
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var section in GuardedSections)
        {
            foreach (var pair in raw.GetSection(section).AsEnumerable())
            {
                if (pair.Value is not null)
                {
                    data[pair.Key] = pair.Value;
                }
            }
        }

        foreach (var endpoint in raw.GetSection(KestrelEndpointsPath).GetChildren())
        {
            if (bool.TryParse(endpoint["Enabled"], out var enabled) && enabled)
            {
                // Kestrel never sees the key: stating it (or removing it) is no change that would rebind the endpoint.
                data.Remove(endpoint.Path + ConfigurationPath.KeyDelimiter + "Enabled");
            }
            else if (IsTurnedOff(endpoint))
            {
                var prefix = endpoint.Path + ConfigurationPath.KeyDelimiter;
                foreach (var key in new List<string>(data.Keys))
                {
                    if (key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) || string.Equals(key, endpoint.Path, StringComparison.OrdinalIgnoreCase))
                    {
                        data.Remove(key);
                    }
                }
            }
        }

        return data;
    }

    private const string KestrelEndpointsPath = "Kestrel:Endpoints";

    /// <summary>A Kestrel endpoint with <c>Enabled</c> <c>false</c> (any case); any other value keeps it (the validator names a bad one).</summary>
    internal static bool IsTurnedOff(IConfigurationSection endpoint)
        => bool.TryParse(endpoint["Enabled"], out var enabled) && !enabled;

    /// <summary>The same keys with the same values (ordinal): two flattened configurations are alike.</summary>
    internal static bool SameAs(Dictionary<string, string?> a, Dictionary<string, string?> b)
    {
        if (a.Count != b.Count)
        {
            return false;
        }

        foreach (var (key, value) in a)
        {
            if (!b.TryGetValue(key, out var other) || !string.Equals(value, other, StringComparison.Ordinal))
            {
                return false;
            }
        }

        return true;
    }

    public void Dispose() => _subscription?.Dispose();

    private static partial class Log
    {
        [LoggerMessage(EventId = 100, Level = LogLevel.Information, Message = "Configuration reloaded (generation {Generation}).")]
        public static partial void ReloadApplied(ILogger logger, int generation);

        [LoggerMessage(EventId = 102, Level = LogLevel.Information, Message = "Kestrel rebinds endpoint(s) {Endpoints}: each stops listening, gives its open connections 5 s, then binds its new settings.")]
        public static partial void EndpointsRebound(ILogger logger, string endpoints);

        [LoggerMessage(EventId = 104, Level = LogLevel.Warning, Message = "Destination(s) {Destinations} draining (metadata Drain): no new association, message or request goes to them; what they carry runs to its end.")]
        public static partial void DestinationsDraining(ILogger logger, string destinations);

        [LoggerMessage(EventId = 105, Level = LogLevel.Information, Message = "Destination(s) {Destinations} back in rotation (Drain no longer set).")]
        public static partial void DestinationsUndrained(ILogger logger, string destinations);

        [LoggerMessage(EventId = 103, Level = LogLevel.Information, Message = "Configuration is back to what runs (generation {Generation}); the rejected edit is no longer pending.")]
        public static partial void RejectionWithdrawn(ILogger logger, int generation);

        [LoggerMessage(EventId = 101, Level = LogLevel.Error, Message = "Configuration reload rejected, the last good configuration keeps serving. {Count} problem(s):\n{Problems}")]
        public static partial void ReloadRejected(ILogger logger, int count, string problems);
    }
}
