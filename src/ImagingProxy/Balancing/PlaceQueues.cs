using System.Collections.Concurrent;
using System.Globalization;
using ImagingProxy.Configuration;
using Yarp.ReverseProxy.Configuration;

namespace ImagingProxy.Balancing;

/// <summary>
/// The associations or requests waiting for a place at full clusters (cluster metadata <c>QueueTimeout</c>, destination
/// <c>MaxConcurrent</c>): one queue per cluster, served in arrival order, as HAProxy's server queues. A place released
/// in a cluster wakes one waiter, that cluster's longest waiting one not woken already, which looks for a place
/// (another release wakes the next one); a waiter that leaves holding a wake-up it has not looked with (its timeout, its
/// client leaving) hands it to the next. So a release costs one look, not one per waiter, and a waiter that loses a
/// place to a newcomer (one that arrived while a place was free takes it without queueing) keeps its rank for the next.
/// Each waiter also looks again every <see cref="Recheck"/> (a destination back from Unhealthy, or a reload raising a
/// limit, frees places without a release). Nothing is allocated and no lock is taken while nobody waits.
/// </summary>
public sealed class PlaceQueues
{
    private readonly ConcurrentDictionary<string, ClusterQueue> _queues = new(StringComparer.OrdinalIgnoreCase);
    private int _waiting;

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
    /// Joins the end of <paramref name="clusterId"/>'s queue. The waiter takes <see cref="PlaceWaiter.Next"/> before
    /// each look for a place, waits for it (<see cref="WaitAsync"/>) when the look found none, and is disposed when its
    /// wait ends, with a place or without.
    /// </summary>
    public PlaceWaiter Enter(string clusterId)
    {
        ArgumentNullException.ThrowIfNull(clusterId);
        var queue = _queues.GetOrAdd(clusterId, static _ => new ClusterQueue());
        Interlocked.Increment(ref _waiting);
        var waiter = new PlaceWaiter(this, queue);
        queue.Add(waiter);
        return waiter;
    }

    /// <summary>A place of <paramref name="clusterId"/> may have been freed: its longest waiting waiter not woken yet wakes (a volatile read when nobody waits anywhere).</summary>
    public void Released(string clusterId)
    {
        if (Volatile.Read(ref _waiting) == 0 || !_queues.TryGetValue(clusterId, out var queue))
        {
            return;
        }

        queue.WakeOne();
    }

    /// <summary>How many wait for a place of <paramref name="clusterId"/> now.</summary>
    public int Waiting(string clusterId) => _queues.TryGetValue(clusterId, out var queue) ? queue.Count : 0;

    internal void Left() => Interlocked.Decrement(ref _waiting);

    /// <summary>
    /// Waits until <paramref name="next"/> (<see cref="PlaceWaiter.Next"/>, taken before the waiter looked) completes, at
    /// most <paramref name="left"/> and at most <see cref="Recheck"/>: then the waiter looks again.
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

    /// <summary>One cluster's waiters in arrival order (a list linked through the waiters, under one lock).</summary>
    internal sealed class ClusterQueue
    {
        private readonly Lock _lock = new();
        private PlaceWaiter? _first;
        private PlaceWaiter? _last;

        public int Count { get; private set; }

        public void Add(PlaceWaiter waiter)
        {
            lock (_lock)
            {
                waiter.Previous = _last;
                if (_last is null)
                {
                    _first = waiter;
                }
                else
                {
                    _last.Following = waiter;
                }

                _last = waiter;
                Count++;
            }
        }

        /// <summary>Wakes the first waiter that holds no wake-up yet, if any.</summary>
        public void WakeOne()
        {
            TaskCompletionSource? signal = null;
            lock (_lock)
            {
                for (var waiter = _first; waiter is not null; waiter = waiter.Following)
                {
                    if (!waiter.Woken)
                    {
                        waiter.Woken = true;
                        signal = waiter.Signal;
                        break;
                    }
                }
            }

            signal?.TrySetResult();
        }

        /// <summary>A new wake-up task for <paramref name="waiter"/>, which is about to look (any wake-up it held is used by that look).</summary>
        public Task Arm(PlaceWaiter waiter)
        {
            var signal = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            lock (_lock)
            {
                waiter.Woken = false;
                waiter.Signal = signal;
            }

            return signal.Task;
        }

        /// <summary>Takes <paramref name="waiter"/> out; true when it held a wake-up it did not look with.</summary>
        public bool Remove(PlaceWaiter waiter)
        {
            lock (_lock)
            {
                if (waiter.Previous is null)
                {
                    _first = waiter.Following;
                }
                else
                {
                    waiter.Previous.Following = waiter.Following;
                }

                if (waiter.Following is null)
                {
                    _last = waiter.Previous;
                }
                else
                {
                    waiter.Following.Previous = waiter.Previous;
                }

                waiter.Previous = waiter.Following = null;
                Count--;
                return waiter.Woken;
            }
        }
    }
}

/// <summary>One association or request in a cluster's queue (<see cref="PlaceQueues.Enter"/>); disposing it leaves the queue.</summary>
public sealed class PlaceWaiter : IDisposable
{
    private readonly PlaceQueues _owner;
    private readonly PlaceQueues.ClusterQueue _queue;
    private bool _left;

    internal PlaceWaiter(PlaceQueues owner, PlaceQueues.ClusterQueue queue)
    {
        _owner = owner;
        _queue = queue;
    }

    internal PlaceWaiter? Previous { get; set; }

    internal PlaceWaiter? Following { get; set; }

    /// <summary>A release woke this waiter since its last <see cref="Next"/> (guarded by the queue's lock).</summary>
    internal bool Woken { get; set; }

    internal TaskCompletionSource? Signal { get; set; }

    /// <summary>
    /// A task that completes when a release wakes this waiter: taken <em>before</em> each look for a place, so a place
    /// released after the look still wakes it.
    /// </summary>
    public Task Next() => _queue.Arm(this);

    /// <summary>Leaves the queue; a wake-up this waiter held without looking with it goes to the next waiter.</summary>
    public void Dispose()
    {
        if (_left)
        {
            return;
        }

        _left = true;
        var unused = _queue.Remove(this);
        _owner.Left();
        if (unused)
        {
            _queue.WakeOne();
        }
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
