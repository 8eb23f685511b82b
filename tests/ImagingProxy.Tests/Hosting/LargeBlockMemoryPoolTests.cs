using System.Buffers;
using System.Runtime.CompilerServices;
using ImagingProxy.Hosting;
using Microsoft.Extensions.Time.Testing;

namespace ImagingProxy.Tests.Hosting;

public sealed class LargeBlockMemoryPoolTests
{
    [Fact]
    public void A_returned_block_is_rented_again_whole_without_a_new_owner()
    {
        using var pool = new LargeBlockMemoryPool();
        var first = pool.Rent();
        var memory = first.Memory;
        first.Dispose();

        var second = pool.Rent();

        Assert.Same(first, second);
        Assert.True(second.Memory.Span.Overlaps(memory.Span));
        Assert.Equal(LargeBlockMemoryPool.BlockSize, second.Memory.Length);
    }

    [Fact]
    public void A_returned_block_cannot_be_used_and_a_second_dispose_does_not_return_it_twice()
    {
        using var pool = new LargeBlockMemoryPool();
        var block = pool.Rent();
        block.Dispose();
        block.Dispose();

        Assert.Throws<ObjectDisposedException>(() => block.Memory);
        var a = pool.Rent();
        var b = pool.Rent();
        Assert.NotSame(a, b);
        Assert.False(a.Memory.Span.Overlaps(b.Memory.Span));
    }

    [Fact]
    public void A_request_larger_than_a_block_is_refused()
    {
        using var pool = new LargeBlockMemoryPool();

        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Rent(LargeBlockMemoryPool.BlockSize + 1));
    }

    [Fact]
    public void Blocks_a_burst_took_are_given_back_once_nobody_needs_them()
    {
        // A burst: 1,000 connections each holding a receive block, then all closed (bench/soak.sh found the blocks
        // still pinned minutes later).
        var time = new FakeTimeProvider();
        using var pool = new LargeBlockMemoryPool(time);
        var burst = RentAll(pool, 1000);
        foreach (var block in burst)
        {
            block.Dispose();
        }

        Assert.Equal(1000, pool.Retained);

        // The period of the burst itself gives nothing back (the blocks were in use); then half of the unused ones go
        // each period.
        time.Advance(LargeBlockMemoryPool.EvictionPeriod);
        Assert.Equal(1000, pool.Retained);
        time.Advance(LargeBlockMemoryPool.EvictionPeriod);
        Assert.Equal(500, pool.Retained);
        for (var i = 0; i < 10; i++)
        {
            time.Advance(LargeBlockMemoryPool.EvictionPeriod);
        }

        Assert.Equal(0, pool.Retained);
        var after = pool.Rent();
        Assert.DoesNotContain(after, burst);
    }

    [Fact]
    public void Blocks_rented_in_every_period_are_kept()
    {
        var time = new FakeTimeProvider();
        using var pool = new LargeBlockMemoryPool(time);
        var first = RentAll(pool, 20);
        ReturnAll(first);
        for (var period = 0; period < 10; period++)
        {
            // Steady load: the same 20 connections' worth of blocks is needed at some moment of every period.
            ReturnAll(RentAll(pool, 20));
            time.Advance(LargeBlockMemoryPool.EvictionPeriod);
        }

        Assert.Equal(20, pool.Retained);
        var again = RentAll(pool, 20);
        Assert.All(again, block => Assert.Contains(block, first));
    }

    [Fact]
    public void Only_the_blocks_no_one_needed_during_a_period_are_given_back()
    {
        var time = new FakeTimeProvider();
        using var pool = new LargeBlockMemoryPool(time);
        ReturnAll(RentAll(pool, 100));
        time.Advance(LargeBlockMemoryPool.EvictionPeriod);

        // 30 of the 100 are needed during the next period: of the 70 that stayed idle throughout, half go.
        ReturnAll(RentAll(pool, 30));
        time.Advance(LargeBlockMemoryPool.EvictionPeriod);

        Assert.Equal(65, pool.Retained);
    }

    [Fact]
    public void The_blocks_kept_are_the_oldest_and_they_are_rented_first()
    {
        // The pinned heap is never compacted: keeping the oldest blocks lets the regions a burst's blocks were allocated
        // in empty out.
        var time = new FakeTimeProvider();
        using var pool = new LargeBlockMemoryPool(time);
        var old = RentAll(pool, 10);
        ReturnAll(old);
        time.Advance(LargeBlockMemoryPool.EvictionPeriod);

        // A burst: the 10 old blocks and 20 new ones, the new ones returned first.
        var burst = RentAll(pool, 30);
        ReturnAll(burst[10..]);
        ReturnAll(burst[..10]);
        time.Advance(LargeBlockMemoryPool.EvictionPeriod);
        Assert.Equal(30, pool.Retained);

        // Idle for a period: 15 go, the 15 newest.
        time.Advance(LargeBlockMemoryPool.EvictionPeriod);
        Assert.Equal(15, pool.Retained);
        var rented = RentAll(pool, 15);
        Assert.Equal(old, rented[..10]);
        Assert.Equal(burst[10..15], rented[10..]);
    }

    [Fact]
    public void A_block_returned_after_the_pool_was_disposed_is_not_kept()
    {
        var pool = new LargeBlockMemoryPool(new FakeTimeProvider());
        ReturnAll(RentAll(pool, 3));
        var late = pool.Rent();
        pool.Dispose();

        late.Dispose();

        Assert.Equal(0, pool.Retained);
    }

    [Fact]
    public void A_pool_nobody_disposed_is_not_kept_alive_by_its_eviction_timer()
    {
        var time = new FakeTimeProvider();
        var pool = Abandoned(time);

        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();

        Assert.False(pool.TryGetTarget(out _));
        time.Advance(LargeBlockMemoryPool.EvictionPeriod); // the timer finds its pool gone and stops
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static WeakReference<LargeBlockMemoryPool> Abandoned(TimeProvider time)
    {
        var pool = new LargeBlockMemoryPool(time);
        pool.Rent().Dispose();
        return new WeakReference<LargeBlockMemoryPool>(pool);
    }

    private static List<IMemoryOwner<byte>> RentAll(LargeBlockMemoryPool pool, int count)
    {
        var blocks = new List<IMemoryOwner<byte>>(count);
        for (var i = 0; i < count; i++)
        {
            blocks.Add(pool.Rent());
        }

        return blocks;
    }

    private static void ReturnAll(List<IMemoryOwner<byte>> blocks)
    {
        foreach (var block in blocks)
        {
            block.Dispose();
        }
    }
}
