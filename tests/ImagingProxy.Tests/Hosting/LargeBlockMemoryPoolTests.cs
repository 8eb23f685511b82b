using ImagingProxy.Hosting;

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
}
