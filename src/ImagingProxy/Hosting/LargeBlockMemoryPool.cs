using System.Buffers;
using System.Collections.Concurrent;

namespace ImagingProxy.Hosting;

/// <summary>
/// A pinned-block memory pool with 32 KiB blocks for Kestrel's socket transport. Kestrel's default 4 KiB blocks make
/// every socket receive at most 4 KiB (about 2 KiB on average, measured with strace): relaying a DICOM C-STORE or a
/// WADO-RS body then costs one receive system call per 2 KiB. With 32 KiB blocks a receive takes up to 32 KiB.
/// Blocks come from the pinned object heap and are reused; at most <see cref="MaxRetainedBlocks"/> are kept.
/// </summary>
/// <remarks>
/// The pool gives back what a burst took, as Kestrel's own pool does since .NET 10: every <see cref="EvictionPeriod"/>
/// it lets go of half the blocks that stayed in it through the whole period (the fewest it held at any moment of the
/// period: no connection needed those), the most recently allocated first (<see cref="Evict"/>). A raw DICOM or MLLP
/// connection holds a block while it waits for bytes, so a burst of connections (a modality storm, a port scan) used
/// to leave its blocks pinned until the process restarted (bench/soak.sh: 1,000 idle connections, 31 MiB), up to
/// <see cref="MaxRetainedBlocks"/> blocks (128 MiB) per pool, and Kestrel creates a pool per I/O queue (one per core,
/// at most 16) per listener.
/// </remarks>
public sealed class LargeBlockMemoryPool : MemoryPool<byte>
{
    public const int BlockSize = 32 * 1024;
    public const int MaxRetainedBlocks = 4096;

    /// <summary>How often blocks that nobody needed are let go.</summary>
    public static readonly TimeSpan EvictionPeriod = TimeSpan.FromSeconds(10);

    private readonly ConcurrentQueue<Block> _blocks = new();
    private readonly Eviction _eviction;
    private int _retained;
    private volatile bool _disposed;
    private long _allocated;

    /// <summary>The fewest blocks the pool held during the current eviction period (an estimate: updated without a lock).</summary>
    private int _lowWater;

    public LargeBlockMemoryPool()
        : this(TimeProvider.System)
    {
    }

    public LargeBlockMemoryPool(TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(time);
        _eviction = new Eviction(this, time);
    }

    public override int MaxBufferSize => BlockSize;

    /// <summary>Blocks held in the pool now, ready to be rented.</summary>
    public int Retained => Volatile.Read(ref _retained);

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (_blocks.TryDequeue(out var block))
        {
            var left = Interlocked.Decrement(ref _retained);
            if (left < Volatile.Read(ref _lowWater))
            {
                Volatile.Write(ref _lowWater, left);
            }

            block.Lease();
            return block;
        }

        if (Volatile.Read(ref _lowWater) != 0)
        {
            Volatile.Write(ref _lowWater, 0);
        }

        return new Block(this);
    }

    /// <summary>
    /// Lets go of half the blocks no one rented during the period just ended, the most recently allocated ones, and puts
    /// the others back oldest first, so they are rented first (the timer's work; public for tests). The pinned heap is
    /// never compacted: a region of it is given back only once nothing in it is alive, and the blocks of a burst were
    /// allocated together, after the pool's older ones. Keeping the older blocks and renting them first empties the
    /// burst's regions; letting go of blocks in the queue's order would leave a few alive in each region and the rest
    /// of the region as free space (a 4,000-connection burst left 59 MiB of pinned heap, 58 MiB of it free, that way).
    /// </summary>
    public void Evict()
    {
        if (_disposed)
        {
            return;
        }

        var unused = Math.Min(Volatile.Read(ref _lowWater), Volatile.Read(ref _retained));
        var evict = (unused + 1) / 2;
        if (evict > 0)
        {
            // Off the hot path: at most MaxRetainedBlocks are moved, once per period. A rent meanwhile may find the
            // queue short and allocate: that block is a new one, among the first to go next time.
            var idle = new List<Block>(Volatile.Read(ref _retained));
            while (_blocks.TryDequeue(out var block))
            {
                idle.Add(block);
            }

            idle.Sort(static (a, b) => a.Allocated.CompareTo(b.Allocated));
            var keep = Math.Max(0, idle.Count - evict);
            for (var i = 0; i < keep; i++)
            {
                _blocks.Enqueue(idle[i]);
            }

            Interlocked.Add(ref _retained, keep - idle.Count);
        }

        Volatile.Write(ref _lowWater, Volatile.Read(ref _retained));
    }

    private void Return(Block block)
    {
        if (_disposed)
        {
            // Kestrel disposes its pools with their listener; a connection's last block may come back after that.
            return;
        }

        if (Interlocked.Increment(ref _retained) <= MaxRetainedBlocks)
        {
            _blocks.Enqueue(block);
        }
        else
        {
            Interlocked.Decrement(ref _retained);
        }
    }

    protected override void Dispose(bool disposing)
    {
        _disposed = true;
        _eviction.Dispose();
        _blocks.Clear();
        Volatile.Write(ref _retained, 0);
    }

    /// <summary>
    /// The eviction timer. It holds the pool weakly: Kestrel disposes its pools with their listener, and a pool nobody
    /// disposed is still collected (its timer then stops) rather than kept alive by its own timer.
    /// </summary>
    private sealed class Eviction : IDisposable
    {
        private readonly WeakReference<LargeBlockMemoryPool> _pool;
        private readonly ITimer _timer;

        public Eviction(LargeBlockMemoryPool pool, TimeProvider time)
        {
            _pool = new WeakReference<LargeBlockMemoryPool>(pool);
            _timer = time.CreateTimer(static s => ((Eviction)s!).Tick(), this, EvictionPeriod, EvictionPeriod);
        }

        public void Dispose() => _timer.Dispose();

        private void Tick()
        {
            if (_pool.TryGetTarget(out var pool))
            {
                pool.Evict();
            }
            else
            {
                _timer.Dispose();
            }
        }
    }

    /// <summary>
    /// A block and its owner in one object, reused whole (a pipe rents a block per receive: an owner object per rent
    /// would be an allocation per relayed message). As with Kestrel's own pool, the owner must not be used after
    /// <see cref="Dispose"/>.
    /// </summary>
    private sealed class Block(LargeBlockMemoryPool pool) : IMemoryOwner<byte>
    {
        private readonly byte[] _array = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);
        private int _leased = 1;

        /// <summary>The pool's allocation count when this block was allocated: its age.</summary>
        public long Allocated { get; } = Interlocked.Increment(ref pool._allocated);

        public Memory<byte> Memory => Volatile.Read(ref _leased) == 1 ? _array : throw new ObjectDisposedException(nameof(Block));

        public void Lease() => Volatile.Write(ref _leased, 1);

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _leased, 0) == 1)
            {
                pool.Return(this);
            }
        }
    }
}
