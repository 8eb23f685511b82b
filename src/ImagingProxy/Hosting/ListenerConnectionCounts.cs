using System.Collections.Concurrent;

namespace ImagingProxy.Hosting;

/// <summary>
/// Connections open per raw listener, counted from the accept to the close: what a DICOM listener's
/// <c>MaxAssociations</c> and an MLLP listener's <c>MaxConnections</c> are checked against, and what <c>/status</c> shows.
/// One instance per connection handler.
/// </summary>
internal sealed class ListenerConnectionCounts
{
    private readonly ConcurrentDictionary<string, Count> _counts = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>The count of <paramref name="listener"/> (created at its first connection).</summary>
    public Count For(string listener) => _counts.GetOrAdd(listener, static _ => new Count());

    /// <summary>Connections open on <paramref name="listener"/> now.</summary>
    public int OpenOn(string listener) => _counts.TryGetValue(listener, out var count) ? count.Value : 0;

    /// <summary>One listener's count of open connections.</summary>
    internal sealed class Count
    {
        private int _value;

        public int Value => Volatile.Read(ref _value);

        /// <summary>Counts one more connection; returns the count with it.</summary>
        public int Add() => Interlocked.Increment(ref _value);

        /// <summary>Counts one more connection unless <paramref name="max"/> are open already.</summary>
        public bool TryAdd(int max)
        {
            while (true)
            {
                var current = Volatile.Read(ref _value);
                if (current >= max)
                {
                    return false;
                }

                if (Interlocked.CompareExchange(ref _value, current + 1, current) == current)
                {
                    return true;
                }
            }
        }

        /// <summary>A counted connection closed.</summary>
        public void Remove() => Interlocked.Decrement(ref _value);
    }
}
