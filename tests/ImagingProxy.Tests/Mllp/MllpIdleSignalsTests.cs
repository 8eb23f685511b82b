using System.IO.Pipelines;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

/// <summary>
/// The inbound connection's read timer (<c>IdleTimeout</c> between messages, <c>AckTimeout</c> inside a frame), step by
/// step under a clock the test moves and a timer whose callback the test runs: a callback can run late (after the read
/// it fired for completed and the next was timed) or as a read completes, and neither may close a connection that had
/// its bytes in time.
/// </summary>
public sealed class MllpIdleSignalsTests
{
    private static readonly TimeSpan s_idle = TimeSpan.FromSeconds(7);
    private readonly ManualClock _time = new();
    private readonly Pipe _pipe = new();

    private MllpConnectionHandler.Signals Signals(TimeSpan? idle, TimeSpan frame) => new(_pipe.Reader, _time, idle, frame);

    /// <summary>Whether the read was cancelled (the timer woke it), read without waiting.</summary>
    private bool ReadCancelled()
    {
        Assert.True(_pipe.Reader.TryRead(out var result), "the read would wait");
        _pipe.Reader.AdvanceTo(result.Buffer.Start);
        return result.IsCanceled;
    }

    [Fact]
    public void A_read_that_waits_its_whole_timeout_expires()
    {
        using var signals = Signals(s_idle, s_idle);
        signals.ArmIdle(insideFrame: false);
        _time.Now += s_idle;
        _time.Fire();
        signals.DisarmIdle();

        Assert.True(ReadCancelled());
        Assert.True(signals.TakeIdleExpired());
        Assert.False(signals.TakeIdleExpired()); // once
    }

    [Fact]
    public void A_callback_that_runs_late_after_the_next_read_was_timed_sets_the_timer_again_and_expires_nothing()
    {
        using var signals = Signals(s_idle, s_idle);
        signals.ArmIdle(insideFrame: false);
        _time.Now += s_idle - TimeSpan.FromMilliseconds(1);
        signals.DisarmIdle(); // a message arrived just in time
        signals.ArmIdle(insideFrame: false); // the read for the next one

        _time.Now += TimeSpan.FromMilliseconds(2); // the first read's timer fires, its callback runs now
        _time.Fire();

        Assert.False(_pipe.Reader.TryRead(out _)); // the read of now is not woken
        Assert.Equal(s_idle - TimeSpan.FromMilliseconds(2), _time.Due); // and is timed for its own time left
        signals.DisarmIdle();
        Assert.False(signals.TakeIdleExpired());
    }

    [Fact]
    public void A_timer_that_fires_as_the_read_completes_does_not_expire_the_next_read()
    {
        using var signals = Signals(s_idle, s_idle);
        signals.ArmIdle(insideFrame: false);
        _time.Now += s_idle;
        _time.Fire(); // due: the read's bytes arrived at that very moment; its cancellation reaches the next read
        signals.DisarmIdle();
        signals.ArmIdle(insideFrame: false);
        Assert.True(ReadCancelled());
        signals.DisarmIdle();

        Assert.False(signals.TakeIdleExpired());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_read_whose_bytes_came_in_time_is_not_expired_when_the_timer_fires_before_the_reader_runs(bool insideFrame)
    {
        // The bytes complete the pending read just before its due time; the reader's continuation runs only after the
        // timer fired, so the pipe hands it the bytes and the cancellation in one result.
        using var signals = Signals(s_idle, s_idle);
        signals.ArmIdle(insideFrame);
        var read = _pipe.Reader.ReadAsync();
        _time.Now += s_idle - TimeSpan.FromMilliseconds(1);
        await _pipe.Writer.WriteAsync(new byte[] { 0x0B, (byte)'M' });
        _time.Now += TimeSpan.FromMilliseconds(2);
        _time.Fire();
        var result = await read;
        signals.DisarmIdle();

        Assert.True(result.IsCanceled);
        Assert.Equal(2, result.Buffer.Length);
        Assert.False(signals.TakeIdleExpired(readBroughtBytes: true));
        _pipe.Reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
    }

    [Fact]
    public async Task Over_max_connections_the_deadline_expires_a_read_even_when_it_brought_bytes()
    {
        using var signals = new MllpConnectionHandler.Signals(_pipe.Reader, _time, s_idle, s_idle, deadline: true);
        signals.ArmIdle(insideFrame: false);
        var read = _pipe.Reader.ReadAsync();
        _time.Now += s_idle;
        await _pipe.Writer.WriteAsync(new byte[] { 0x0B, (byte)'M' }); // a trickling sender
        _time.Fire();
        var result = await read;
        signals.DisarmIdle();

        Assert.True(result.IsCanceled);
        Assert.True(signals.TakeIdleExpired(readBroughtBytes: true));
        _pipe.Reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
    }

    [Fact]
    public void Without_an_idle_timeout_only_a_read_inside_a_frame_is_timed()
    {
        using var signals = Signals(null, s_idle);
        signals.ArmIdle(insideFrame: false);
        Assert.Null(_time.Due); // between messages: no timer at all

        signals.ArmIdle(insideFrame: true);
        _time.Now += s_idle;
        _time.Fire(); // the frame's end arrived as its timer fired
        signals.DisarmIdle();
        signals.ArmIdle(insideFrame: false); // between messages again, not timed
        Assert.True(ReadCancelled());
        signals.DisarmIdle();
        Assert.False(signals.TakeIdleExpired());

        signals.ArmIdle(insideFrame: true); // a sender that stops inside a frame is timed out
        _time.Now += s_idle;
        _time.Fire();
        signals.DisarmIdle();
        Assert.True(ReadCancelled());
        Assert.True(signals.TakeIdleExpired());
    }

    [Fact]
    public void Reads_move_the_timer_only_when_it_would_fire_too_late()
    {
        // A message in many reads, or a connection with IdleTimeout and a message a second: the timer is set once, and a
        // firing before the latest read's due time sets it again for the rest.
        using var signals = Signals(s_idle, s_idle);
        for (var i = 0; i < 100; i++)
        {
            signals.ArmIdle(insideFrame: i % 2 == 1);
            _time.Now += TimeSpan.FromMilliseconds(10);
            signals.DisarmIdle();
        }

        Assert.Equal(1, _time.Changes);
    }

    /// <summary>A clock moved by the test (<see cref="Now"/>); its one timer's callback runs when the test says (<see cref="Fire"/>).</summary>
    private sealed class ManualClock : TimeProvider
    {
        private TimerCallback? _callback;
        private object? _state;

        public TimeSpan Now { get; set; } = TimeSpan.FromHours(1);

        /// <summary>When the timer was last set to fire, from the moment it was set (null: not set).</summary>
        public TimeSpan? Due { get; private set; }

        public int Changes { get; private set; }

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => Now.Ticks;

        public void Fire()
        {
            Due = null;
            _callback!(_state);
        }

        public override ITimer CreateTimer(TimerCallback callback, object? state, TimeSpan dueTime, TimeSpan period)
        {
            _callback = callback;
            _state = state;
            return new Timer(this);
        }

        private sealed class Timer(ManualClock clock) : ITimer
        {
            public bool Change(TimeSpan dueTime, TimeSpan period)
            {
                clock.Changes++;
                clock.Due = dueTime == Timeout.InfiniteTimeSpan ? null : dueTime;
                return true;
            }

            public void Dispose()
            {
            }

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}
