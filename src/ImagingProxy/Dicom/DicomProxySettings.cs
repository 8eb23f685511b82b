using ImagingProxy.Configuration;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Primitives;

namespace ImagingProxy.Dicom;

/// <summary>
/// The <c>ImagingProxy:Dicom</c> section of the validated, hot-reloaded configuration, bound once per applied
/// configuration generation. Each association reads <see cref="Current"/> when it starts, so a reload applies to
/// new associations and never changes one in flight. Built on the <see cref="ConfigurationGate"/>, it reads the gate's
/// <see cref="ConfigurationGate.Accepted"/> snapshot: never a change YARP is still judging or refused, never keys of two
/// generations in one bind.
/// </summary>
public sealed class DicomProxySettings : IDisposable
{
    private readonly ConfigurationGate? _gate;
    private readonly IConfiguration? _configuration;
    private readonly IDisposable? _subscription;
    private int _version;
    private Snapshot? _cached;

    public DicomProxySettings(ConfigurationGate gate)
    {
        ArgumentNullException.ThrowIfNull(gate);
        _gate = gate;
    }

    /// <summary>Reads <c>ImagingProxy:Dicom</c> from <paramref name="configuration"/> (tests pass a fixed one).</summary>
    public DicomProxySettings(IConfiguration configuration)
    {
        ArgumentNullException.ThrowIfNull(configuration);
        _configuration = configuration;
        _subscription = ChangeToken.OnChange(configuration.GetReloadToken, () => Interlocked.Increment(ref _version));
    }

    public DicomOptions Current => Settings().Options;

    /// <summary>
    /// Failover before acceptance: <c>ImagingProxy:Dicom:MaxAttempts</c> (destinations tried per association, default
    /// <see cref="ProxyDefaults.MaxAttempts"/>) and <c>ImagingProxy:Dicom:ConnectTimeout</c> (per TCP connect, default
    /// <see cref="ProxyDefaults.ConnectTimeout"/>), read from the same validated configuration as <see cref="Current"/>.
    /// </summary>
    public DicomFailoverSettings Failover => Settings().Failover;

    /// <summary>The settings of the current generation, bound at its first read.</summary>
    private Snapshot Settings()
    {
        var cached = Volatile.Read(ref _cached);
        if (_gate is not null)
        {
            // One immutable snapshot per applied change: its reference is the generation.
            var accepted = _gate.Accepted;
            return cached is not null && ReferenceEquals(cached.Source, accepted) ? cached : Bind(accepted, 0, accepted);
        }

        // The version is taken before binding: a reload during the bind leaves a stale entry that the next read replaces.
        var version = Volatile.Read(ref _version);
        return cached is not null && cached.Version == version ? cached : Bind(_configuration!, version, null);
    }

    private Snapshot Bind(IConfiguration configuration, int version, IConfiguration? source)
    {
        var section = configuration.GetSection($"{ImagingProxyOptions.SectionName}:Dicom");
        var options = section.Get<DicomOptions>() ?? new DicomOptions();
        var snapshot = new Snapshot(version, source, options, ReadFailover(section), DicomRouteTable.Order(options.Routes));
        Volatile.Write(ref _cached, snapshot);
        return snapshot;
    }

    internal static DicomFailoverSettings ReadFailover(IConfiguration section)
    {
        var attempts = ProxyDefaults.MaxAttempts;
        var connectTimeout = ProxyDefaults.ConnectTimeout;
        if (int.TryParse(section["MaxAttempts"], System.Globalization.NumberStyles.Integer, System.Globalization.CultureInfo.InvariantCulture, out var a) && a >= 1)
        {
            attempts = Math.Min(a, DicomFailoverSettings.MaxAttemptsLimit);
        }

        if (TimeSpan.TryParse(section["ConnectTimeout"], System.Globalization.CultureInfo.InvariantCulture, out var t) && t > TimeSpan.Zero)
        {
            connectTimeout = t;
        }

        return new DicomFailoverSettings(attempts, connectTimeout);
    }

    public void Dispose() => _subscription?.Dispose();

    public static TimeSpan ArtimTimeout(DicomOptions options) => options?.ArtimTimeout ?? ProxyDefaults.ArtimTimeout;

    public static TimeSpan IdleTimeout(DicomOptions options) => options?.IdleTimeout ?? ProxyDefaults.AssociationIdleTimeout;

    public static uint MaxAssociatePduLength(DicomOptions options) => (uint)(options?.MaxAssociatePduLength ?? ProxyDefaults.MaxAssociatePduLength);

    public static string ProbeCallingAeTitle(DicomOptions options) => options?.ProbeCallingAeTitle ?? ProxyDefaults.ProbeCallingAeTitle;

    /// <summary>The routes of <paramref name="options"/> in matching order, sorted once per configuration generation.</summary>
    public KeyValuePair<string, DicomRouteConfig>[] OrderedRoutes(DicomOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        return Volatile.Read(ref _cached) is { } hit && ReferenceEquals(hit.Options, options) ? hit.Routes : DicomRouteTable.Order(options.Routes);
    }

    /// <summary>One generation's bound settings: <paramref name="Source"/> is the gate's snapshot they were bound from (null: <paramref name="Version"/> of a plain configuration).</summary>
    private sealed record Snapshot(int Version, IConfiguration? Source, DicomOptions Options, DicomFailoverSettings Failover, KeyValuePair<string, DicomRouteConfig>[] Routes);
}
