using System.Globalization;
using ImagingProxy.Configuration;
using Microsoft.Extensions.Configuration;
using Polly;

namespace ImagingProxy.Mllp;

/// <summary>
/// The MLLP routes and limits of one configuration generation, compiled for per-message matching.
/// </summary>
/// <remarks>
/// The configuration system does not keep the order of JSON object keys, so routes are sorted: by
/// <see cref="MllpRouteConfig.Order"/> (default 0), then the more specific first (<see cref="Specificity"/>), then by
/// name. The first match wins, so a catch-all never hides a specific route.
/// </remarks>
internal sealed class MllpRouteTable
{
    /// <summary>Default <see cref="PoolIdleTimeout"/>: below the usual 2-5 min idle timeouts of HL7 interface engines.</summary>
    public static readonly TimeSpan DefaultPoolIdleTimeout = TimeSpan.FromSeconds(60);

    private static readonly Dictionary<string, int> s_noLimits = new(StringComparer.OrdinalIgnoreCase);

    private ResiliencePipeline<MllpAttemptResult>? _pipeline;

    private MllpRouteTable(IReadOnlyList<MllpRoute> routes, int maxFrameSize, TimeSpan ackTimeout)
    {
        Routes = routes;
        MaxFrameSize = maxFrameSize;
        AckTimeout = ackTimeout;
    }

    public static MllpRouteTable Empty { get; } = new([], ProxyDefaults.MaxFrameSize, ProxyDefaults.AckTimeout);

    /// <summary><c>ImagingProxy:Mllp:MaxAttempts</c>: nodes tried for one message (first try included).</summary>
    public int MaxAttempts { get; private init; } = ProxyDefaults.MaxAttempts;

    /// <summary><c>ImagingProxy:Mllp:ConnectTimeout</c>: how long opening a connection to one node may take.</summary>
    public TimeSpan ConnectTimeout { get; private init; } = ProxyDefaults.ConnectTimeout;

    /// <summary>
    /// <c>ImagingProxy:Mllp:DeliveryTimeout</c>: the most a sender waits for the answer to one message, all attempts and
    /// connects and backoff included (a connect also has <see cref="ConnectTimeout"/>, an ACK wait <see cref="AckTimeout"/>). Null: <see cref="MaxAttempts"/> ×
    /// (<see cref="ConnectTimeout"/> + <see cref="AckTimeout"/>) in the worst case.
    /// </summary>
    public TimeSpan? DeliveryTimeout { get; private init; }

    /// <summary>
    /// <c>ImagingProxy:Mllp:IdleTimeout</c>: an inbound connection with no byte received for this long is closed. Null
    /// (the default): never, since HL7 senders keep one connection open for hours between bursts.
    /// </summary>
    public TimeSpan? IdleTimeout { get; private init; }

    /// <summary><c>ImagingProxy:Mllp:PoolIdleTimeout</c>: a pooled node connection unused this long is closed.</summary>
    public TimeSpan PoolIdleTimeout { get; private init; } = DefaultPoolIdleTimeout;

    /// <summary>Each listener's <see cref="TcpListenerConfig.MaxConnections"/>; listeners without one are absent.</summary>
    public IReadOnlyDictionary<string, int> MaxConnections { get; private init; } = s_noLimits;

    /// <summary>The retry pipeline of this generation, built once by <see cref="MllpForwarder"/>.</summary>
    internal ResiliencePipeline<MllpAttemptResult> GetPipeline(Func<MllpRouteTable, ResiliencePipeline<MllpAttemptResult>> build)
    {
        var pipeline = Volatile.Read(ref _pipeline);
        if (pipeline is null)
        {
            Interlocked.CompareExchange(ref _pipeline, build(this), null);
            pipeline = _pipeline!;
        }

        return pipeline;
    }

    public IReadOnlyList<MllpRoute> Routes { get; }

    /// <summary>Largest MLLP message accepted from a sender or a node (bytes between &lt;SB&gt; and &lt;EB&gt;).</summary>
    public int MaxFrameSize { get; }

    /// <summary>How long a node has to acknowledge one message before it is sent elsewhere.</summary>
    public TimeSpan AckTimeout { get; }

    /// <summary>Reads <c>ImagingProxy:Mllp</c> (already validated by <see cref="ConfigurationValidator"/>).</summary>
    public static MllpRouteTable Load(IConfiguration root)
    {
        var section = root.GetSection(ImagingProxyOptions.SectionName).GetSection("Mllp");
        var candidates = new List<(int Order, int Specificity, int Index, MllpRoute Route)>();
        var index = 0;
        foreach (var child in section.GetSection("Routes").GetChildren())
        {
            var config = child.Get<MllpRouteConfig>();
            if (config?.Cluster is not { Length: > 0 } cluster
                || !Hl7Pattern.TryCreate(config.MessageType, config.SendingApplication, config.SendingFacility, config.ReceivingApplication, config.ReceivingFacility, out var pattern, out _))
            {
                continue; // the validator rejects such a configuration; never let it widen a later catch-all
            }

            var listeners = config.Listeners is { Count: > 0 } names ? new HashSet<string>(names, StringComparer.OrdinalIgnoreCase) : null;
            candidates.Add((config.Order ?? 0, Specificity(config), index++, new MllpRoute(child.Key, pattern, listeners, cluster)));
        }

        candidates.Sort(static (a, b) => a.Order != b.Order ? a.Order.CompareTo(b.Order)
            : a.Specificity != b.Specificity ? b.Specificity.CompareTo(a.Specificity)
            : a.Index.CompareTo(b.Index));
        var routes = new List<MllpRoute>(candidates.Count);
        foreach (var candidate in candidates)
        {
            routes.Add(candidate.Route);
        }

        var options = section.Get<MllpOptions>();
        return new MllpRouteTable(routes, options?.MaxFrameSize ?? ProxyDefaults.MaxFrameSize, options?.AckTimeout ?? ProxyDefaults.AckTimeout)
        {
            MaxAttempts = int.TryParse(section["MaxAttempts"], NumberStyles.None, CultureInfo.InvariantCulture, out var attempts) && attempts >= 1 ? attempts : ProxyDefaults.MaxAttempts,
            ConnectTimeout = Time(section["ConnectTimeout"]) ?? ProxyDefaults.ConnectTimeout,
            DeliveryTimeout = Time(section["DeliveryTimeout"]),
            IdleTimeout = Time(section["IdleTimeout"]),
            PoolIdleTimeout = Time(section["PoolIdleTimeout"]) ?? DefaultPoolIdleTimeout,
            MaxConnections = ListenerLimits(options),
        };
    }

    private static Dictionary<string, int> ListenerLimits(MllpOptions? options)
    {
        var limits = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, listener) in options?.Listeners ?? [])
        {
            if (listener.MaxConnections is { } max)
            {
                limits[name] = max;
            }
        }

        return limits.Count == 0 ? s_noLimits : limits;
    }

    /// <summary>A positive <c>[d.]hh:mm:ss[.fff]</c> time; null when absent, invalid, zero or <c>Infinite</c>.</summary>
    internal static TimeSpan? Time(string? value)
        => TimeSpan.TryParse(value, CultureInfo.InvariantCulture, out var time) && time > TimeSpan.Zero ? time : null;

    /// <summary>How specific a route is: one point per criterion set (not <c>*</c>), MSH-9 counting each component.</summary>
    internal static int Specificity(MllpRouteConfig config)
    {
        var score = 0;
        if (config.MessageType is { Length: > 0 } type && type != "*")
        {
            foreach (var component in type.Split('^'))
            {
                score += component == "*" ? 0 : 1;
            }
        }

        foreach (var value in new[] { config.SendingApplication, config.SendingFacility, config.ReceivingApplication, config.ReceivingFacility })
        {
            score += string.IsNullOrEmpty(value) || value == "*" ? 0 : 1;
        }

        return score + (config.Listeners is { Count: > 0 } ? 1 : 0);
    }

    /// <summary>The first route whose pattern matches and that applies to <paramref name="listener"/>, or null.</summary>
    public MllpRoute? Match(in Hl7Header header, string listener)
    {
        // Indexed, not foreach: this runs per message and an interface enumerator is an allocation.
        for (var i = 0; i < Routes.Count; i++)
        {
            var route = Routes[i];
            if ((route.Listeners is null || route.Listeners.Contains(listener)) && route.Pattern.Matches(header))
            {
                return route;
            }
        }

        return null;
    }
}
