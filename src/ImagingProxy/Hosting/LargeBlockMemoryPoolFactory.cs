using System.Buffers;
using Microsoft.AspNetCore.Connections;

namespace ImagingProxy.Hosting;

/// <summary>Gives Kestrel's transport <see cref="LargeBlockMemoryPool"/>s (registered as <see cref="IMemoryPoolFactory{T}"/>).</summary>
public sealed class LargeBlockMemoryPoolFactory(TimeProvider time) : IMemoryPoolFactory<byte>
{
    public MemoryPool<byte> Create(MemoryPoolOptions? options = null) => new LargeBlockMemoryPool(time);
}
