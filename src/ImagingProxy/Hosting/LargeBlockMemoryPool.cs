using System.Buffers;
using System.Collections.Concurrent;

namespace ImagingProxy.Hosting;

/// <summary>
/// A pinned-block memory pool with 32 KiB blocks for Kestrel's socket transport. Kestrel's default 4 KiB blocks make
/// every socket receive at most 4 KiB (about 2 KiB on average, measured with strace): relaying a DICOM C-STORE or a
/// WADO-RS body then costs one receive system call per 2 KiB. With 32 KiB blocks a receive takes up to 32 KiB.
/// Blocks come from the pinned object heap and are reused; at most <see cref="MaxRetainedBlocks"/> are kept.
/// </summary>
public sealed class LargeBlockMemoryPool : MemoryPool<byte>
{
    public const int BlockSize = 32 * 1024;
    public const int MaxRetainedBlocks = 4096;

    private readonly ConcurrentQueue<Block> _blocks = new();
    private int _retained;

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (_blocks.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _retained);
            block.Lease();
            return block;
        }

        return new Block(this);
    }

    private void Return(Block block)
    {
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
        _blocks.Clear();
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
