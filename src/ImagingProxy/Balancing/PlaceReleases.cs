using System.Globalization;
using ImagingProxy.Configuration;
using Yarp.ReverseProxy.Configuration;

namespace ImagingProxy.Balancing;

/// <summary>
/// Wakes the associations and requests waiting for a place at a full cluster (cluster metadata <c>QueueTimeout</c>,
/// destination <c>MaxConcurrent</c>) when a place may have been freed. A waiter takes <see cref="Next"/> <em>before</em>
/// it looks for a place, so a place freed in between is not missed; every waiter wakes at a release and looks again (one
/// may take the place before another, which waits for the next). Nothing is allocated while nobody waits.
/// </summary>
public sealed class PlaceReleases
{
    private readonly Lock _lock = new();
    private TaskCompletionSource? _next;

    /// <summary>A task that completes at the next <see cref="Released"/>.</summary>
    public Task Next()
    {
        lock (_lock)
        {
            return (_next ??= new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).Task;
        }
    }

    /// <summary>How often a waiter looks again when nothing was released (a destination back from Unhealthy frees no place).</summary>
    public static readonly TimeSpan Recheck = TimeSpan.FromSeconds(1);

    /// <summary>A cluster's <c>QueueTimeout</c> metadata (validated), or null: read only when every destination is full.</summary>
    public static TimeSpan? QueueTimeout(ClusterConfig cluster)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        return cluster.Metadata?.GetValueOrDefault(MetadataKeys.QueueTimeout) is { } text
            && TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var timeout) && timeout > TimeSpan.Zero ? timeout : null;
    }

    /// <summary>
    /// Waits until <paramref name="next"/> (<see cref="Next"/>, taken before the waiter looked) completes, at most
    /// <paramref name="left"/> and at most <see cref="Recheck"/>: then the waiter looks again.
    /// </summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired (the client left, a deadline).</exception>
    public static async Task WaitAsync(Task next, TimeSpan left, TimeProvider time, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(next);
        try
        {
            await next.WaitAsync(left < Recheck ? left : Recheck, time, cancellationToken);
        }
        catch (TimeoutException)
        {
            // Nothing released in that time: the caller looks again.
        }
    }

    /// <summary>A place may have been freed: the current waiters wake (a volatile read when there are none).</summary>
    public void Released()
    {
        if (Volatile.Read(ref _next) is null)
        {
            return;
        }

        TaskCompletionSource? waiting;
        lock (_lock)
        {
            waiting = _next;
            _next = null;
        }

        waiting?.TrySetResult();
    }
}

/// <summary>How a wait for a place ended: the <c>result</c> label of the queue wait histograms.</summary>
public static class QueueResults
{
    /// <summary>A place was found.</summary>
    public const string Placed = "placed";

    /// <summary><c>QueueTimeout</c> (or the client's ARTIM, for DICOM) passed without a place.</summary>
    public const string TimedOut = "timed_out";

    /// <summary>No destination of the cluster was available any more.</summary>
    public const string NoDestination = "no_destination";

    /// <summary>The client left, or the drain deadline or the route's <c>Timeout</c> came first.</summary>
    public const string Abandoned = "abandoned";
}
