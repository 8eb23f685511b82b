using System.Runtime.CompilerServices;
using ImagingProxy.Configuration;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Health;

/// <summary>
/// Available-destinations policies that honour ImagingProxy's own active probes (YARP's built-ins ignore active
/// health unless YARP's HTTP monitor is enabled, yarp-notes.md §4). Names stay close to YARP's so operators keep
/// one vocabulary: <c>HealthyAndUnknown</c> (default: no destination rather than a dead one) and <c>HealthyOrPanic</c>.
/// Both keep destinations with metadata <c>Backup</c> out while another destination is available, and take them when
/// none is (HAProxy's and NGINX's <c>backup</c>; YARP recomputes a cluster's available destinations at every health
/// change, so backups leave as soon as a primary is back).
/// </summary>
public static class AvailableDestinationsPolicies
{
    private static readonly ConditionalWeakTable<ClusterConfig, StrongBox<bool>> s_hasBackups = [];

    public const string HealthyAndUnknown = "ImagingProxy.HealthyAndUnknown";
    public const string HealthyOrPanic = "ImagingProxy.HealthyOrPanic";

    internal static bool IsAvailable(ClusterConfig config, DestinationState destination)
    {
        if (IsDraining(destination))
        {
            return false;
        }

        var activeEnabled = config.Metadata is not null
            && config.Metadata.TryGetValue(MetadataKeys.ActiveHealthCheckEnabled, out var value)
            && bool.TryParse(value, out var enabled) && enabled;
        var passiveEnabled = config.HealthCheck?.Passive?.Enabled == true;
        return (!activeEnabled || destination.Health.Active != DestinationHealth.Unhealthy)
            && (!passiveEnabled || destination.Health.Passive != DestinationHealth.Unhealthy);
    }

    /// <summary>The destination's metadata <c>Drain</c> is <c>true</c>: an operator took it out of rotation (maintenance).</summary>
    public static bool IsDraining(DestinationState destination)
        => destination.Model?.Config.Metadata is { } metadata && metadata.TryGetValue(MetadataKeys.Drain, out var text)
            && bool.TryParse(text, out var drain) && drain;

    /// <summary>The destination's metadata <c>Backup</c> is <c>true</c>: used only while no other destination is available.</summary>
    public static bool IsBackup(DestinationState destination) => destination.Model is { } model && IsBackup(model.Config);

    /// <summary>The destination configuration's metadata <c>Backup</c> is <c>true</c>.</summary>
    public static bool IsBackup(DestinationConfig destination)
        => destination.Metadata is { } metadata && metadata.TryGetValue(MetadataKeys.Backup, out var text)
            && bool.TryParse(text, out var backup) && backup;

    /// <summary>True when a destination of <paramref name="config"/> is a backup (read once per configuration).</summary>
    internal static bool HasBackups(ClusterConfig config)
        => s_hasBackups.GetValue(config, static c =>
        {
            var any = false;
            foreach (var destination in c.Destinations?.Values ?? [])
            {
                any |= IsBackup(destination);
            }

            return new StrongBox<bool>(any);
        }).Value;

    /// <summary>True when <paramref name="list"/> holds this very destination object.</summary>
    internal static bool Includes(IReadOnlyList<DestinationState> list, DestinationState destination)
    {
        for (var i = 0; i < list.Count; i++)
        {
            if (ReferenceEquals(list[i], destination))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>True when <paramref name="destinations"/> holds a destination that is not a backup.</summary>
    internal static bool HasPrimary(IReadOnlyList<DestinationState> destinations)
    {
        for (var i = 0; i < destinations.Count; i++)
        {
            if (!IsBackup(destinations[i]))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>
    /// Adds to <paramref name="candidates"/> the cluster's backups that are up (health, drain) and not
    /// <paramref name="excluded"/> (those tried, and whatever else the caller rules out): for the next attempt of a request, association or message once every primary it could
    /// go to has failed it, as NGINX tries its backups within the request (YARP recomputes the available destinations on
    /// a thread of its own after a passive failure, so the list an attempt reads may not show the backups yet).
    /// </summary>
    internal static void AddBackups(ClusterConfig config, IReadOnlyList<DestinationState> all, List<DestinationState> candidates, Func<DestinationState, bool> excluded)
    {
        for (var i = 0; i < all.Count; i++)
        {
            var destination = all[i];
            if (IsBackup(destination) && IsAvailable(config, destination) && !excluded(destination) && !candidates.Contains(destination))
            {
                candidates.Add(destination);
            }
        }
    }

    /// <summary>Every destination but those draining: what <c>HealthyOrPanic</c> sends to when none is healthy.</summary>
    internal static IReadOnlyList<DestinationState> NotDraining(IReadOnlyList<DestinationState> all)
    {
        List<DestinationState>? kept = null;
        for (var i = 0; i < all.Count; i++)
        {
            if (IsDraining(all[i]))
            {
                kept ??= CopyOf(all, i);
            }
            else
            {
                kept?.Add(all[i]);
            }
        }

        return kept ?? all;
    }

    private static List<DestinationState> CopyOf(IReadOnlyList<DestinationState> all, int count)
    {
        var copy = new List<DestinationState>(all.Count);
        for (var i = 0; i < count; i++)
        {
            copy.Add(all[i]);
        }

        return copy;
    }

    /// <summary>The available destinations: the primaries that are available, else the available backups.</summary>
    internal static List<DestinationState> Filter(ClusterConfig config, IReadOnlyList<DestinationState> all)
    {
        var available = new List<DestinationState>(all.Count);
        var backups = 0;
        for (var i = 0; i < all.Count; i++)
        {
            if (IsAvailable(config, all[i]))
            {
                available.Add(all[i]);
                backups += IsBackup(all[i]) ? 1 : 0;
            }
        }

        if (backups > 0 && backups < available.Count)
        {
            available.RemoveAll(IsBackup);
        }

        return available;
    }
}
