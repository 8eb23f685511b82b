using System.Threading.Channels;
using Microsoft.Extensions.Time.Testing;

namespace ImagingProxy.Tests.Support;

/// <summary>
/// A <see cref="FakeTimeProvider"/> that reports each time one of its timers is armed for <paramref name="due"/>: a test
/// awaits <see cref="ArmedAsync"/>, then advances the time past it, with no race against the code arming the timer.
/// </summary>
internal sealed class ArmedTimeProvider(TimeSpan due) : FakeTimeProvider
{
    private readonly Channel<bool> _armed = Channel.CreateUnbounded<bool>();
    private readonly TimeSpan _due = due;

    /// <summary>Completes when a timer was armed for the due time (once per arming).</summary>
    public async Task ArmedAsync(TimeSpan timeout) => await _armed.Reader.ReadAsync().AsTask().WaitAsync(timeout);

    public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
    {
        var timer = new Watched(base.CreateTimer(callback, state, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan), this);
        timer.Change(dueTime, period);
        return timer;
    }

    private sealed class Watched(ITimer inner, ArmedTimeProvider owner) : ITimer
    {
        public bool Change(TimeSpan dueTime, TimeSpan period)
        {
            var changed = inner.Change(dueTime, period);
            if (dueTime == owner._due)
            {
                owner._armed.Writer.TryWrite(true);
            }

            return changed;
        }

        public void Dispose() => inner.Dispose();

        public ValueTask DisposeAsync() => inner.DisposeAsync();
    }
}
