using ImagingProxy.Dicom;
using Microsoft.Extensions.Time.Testing;

namespace ImagingProxy.Tests.Dicom;

public sealed class DicomIdleWatchTests
{
    private static readonly TimeSpan s_idle = TimeSpan.FromMinutes(15);
    private static readonly TimeSpan s_artim = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Nothing_moving_for_the_idle_timeout_expires_as_idle()
    {
        var time = new FakeTimeProvider();
        using var watch = Start(time, out _);

        time.Advance(s_idle - TimeSpan.FromSeconds(1));
        Assert.False(watch.Expired.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(await watch.Expired);
    }

    [Fact]
    public async Task Activity_postpones_the_expiry_to_a_whole_timeout_after_the_last_bytes()
    {
        var time = new FakeTimeProvider();
        using var watch = Start(time, out var association);

        time.Advance(TimeSpan.FromMinutes(10));
        association.Touch(time.GetTimestamp());
        time.Advance(TimeSpan.FromMinutes(5));
        Assert.False(watch.Expired.IsCompleted);
        time.Advance(TimeSpan.FromMinutes(10) - TimeSpan.FromSeconds(1));
        Assert.False(watch.Expired.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));

        Assert.True(await watch.Expired);
    }

    [Fact]
    public async Task After_the_release_the_wait_for_the_close_is_artim_and_ends_as_not_idle()
    {
        var time = new FakeTimeProvider();
        using var watch = Start(time, out var association);
        time.Advance(TimeSpan.FromMinutes(1));

        association.MarkReleased();
        time.Advance(s_artim - TimeSpan.FromSeconds(1));
        Assert.False(watch.Expired.IsCompleted);
        time.Advance(TimeSpan.FromSeconds(1));

        Assert.False(await watch.Expired);
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

    private static DicomIdleWatch Start(FakeTimeProvider time, out DicomAssociation association)
    {
        association = new DicomAssociation("a1", "dicom", clientEndPoint: null, time.GetTimestamp());
        var watch = new DicomIdleWatch(association, time, s_idle, s_artim);
        association.IdleWatch = watch;
        return watch;
    }
}
