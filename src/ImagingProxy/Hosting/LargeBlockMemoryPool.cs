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

    private readonly ConcurrentQueue<byte[]> _blocks = new();
    private int _retained;

    public override int MaxBufferSize => BlockSize;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (_blocks.TryDequeue(out var block))
        {
            Interlocked.Decrement(ref _retained);
        }
        else
        {
            block = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);
        }

        return new Block(this, block);
    }

    private void Return(byte[] block)
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

    private sealed class Block(LargeBlockMemoryPool pool, byte[] array) : IMemoryOwner<byte>
    {
        private byte[]? _array = array;

        public Memory<byte> Memory => _array ?? throw new ObjectDisposedException(nameof(Block));

        public void Dispose()
        {
            var array = Interlocked.Exchange(ref _array, null);
            if (array is not null)
            {
                pool.Return(array);
            }
        }
    }
}
