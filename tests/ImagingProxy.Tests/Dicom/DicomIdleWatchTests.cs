using ImagingProxy.Dicom;
using Microsoft.Extensions.Time.Testing;

namespace ImagingProxy.Tests.Dicom;

public sealed class DicomIdleWatchTests
{
    private static readonly TimeSpan s_idle = TimeSpan.FromMinutes(15);
    private static readonly TimeSpan s_artim = TimeSpan.FromSeconds(30);

    [Theory]
    [InlineData(0)]
    [InlineData(10)]
    public async Task Nothing_moving_for_the_idle_timeout_after_the_last_bytes_expires_as_idle(int lastBytesAfterMinutes)
    {
        var time = new FakeTimeProvider();
        using var watch = Start(time, out var association);
        time.Advance(TimeSpan.FromMinutes(lastBytesAfterMinutes));
        association.Touch(time.GetTimestamp());

        // With bytes at 10 min the timer fires at 15 min, finds 5 idle minutes and waits 10 more.
        Assert.True(await ExpiresAfterAsync(time, watch, s_idle));
    }

    [Fact]
    public async Task After_the_release_the_wait_for_the_close_is_artim_and_ends_as_not_idle()
    {
        var time = new FakeTimeProvider();
        using var watch = Start(time, out var association);
        time.Advance(TimeSpan.FromMinutes(1));

        association.MarkReleased();

        Assert.False(await ExpiresAfterAsync(time, watch, s_artim));
    }

    [Fact]
    public void A_disposed_watch_never_expires()
    {
        var time = new FakeTimeProvider();
        var watch = Start(time, out _);

        watch.Dispose();
        time.Advance(s_idle * 2);

        Assert.False(watch.Expired.IsCompleted);
    }

    /// <summary>Checks the watch has not expired one second before <paramref name="after"/> and has at it; returns its verdict.</summary>
    private static async Task<bool> ExpiresAfterAsync(FakeTimeProvider time, DicomIdleWatch watch, TimeSpan after)
    {
        time.Advance(after - TimeSpan.FromSeconds(1));
        Assert.False(watch.Expired.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));
        return await watch.Expired;
    }

    private static DicomIdleWatch Start(FakeTimeProvider time, out DicomAssociation association)
    {
        association = new DicomAssociation("a1", "dicom", clientEndPoint: null, time.GetTimestamp());
        var watch = new DicomIdleWatch(association, time, s_idle, s_artim);
        association.IdleWatch = watch;
        return watch;
    }
}
