namespace ImagingProxy.Dicom;

/// <summary>
/// A relayed association's idle timeout and, once the release went through, its ARTIM wait for the requestor's close
/// (PS3.8 Sta13), on one timer per association. The relay only stamps <see cref="DicomAssociation.LastActivity"/>; the
/// timer looks at the stamp when it fires and re-arms for the rest of the timeout. No task or delay per association; the
/// callback runs only when the timer fires, which an association that is released and closed never lets it do.
/// </summary>
internal sealed class DicomIdleWatch : IDisposable
{
    private readonly DicomAssociation _association;
    private readonly TimeProvider _time;
    private readonly TimeSpan _idleTimeout;
    private readonly TimeSpan _artimTimeout;
    private readonly ITimer _timer;

    // Completed from a timer callback; the relay's stop must not run on the timer's thread.
    private readonly TaskCompletionSource<bool> _expired = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Lock _gate = new();
    private bool _released;

    public DicomIdleWatch(DicomAssociation association, TimeProvider time, TimeSpan idleTimeout, TimeSpan artimTimeout)
    {
        _association = association;
        _time = time;
        _idleTimeout = idleTimeout;
        _artimTimeout = artimTimeout;
        _timer = time.CreateTimer(static s => ((DicomIdleWatch)s!).Fire(), this, idleTimeout, Timeout.InfiniteTimeSpan);
    }

    /// <summary>
    /// Completes when the relay should stop: true when nothing moved either way for the idle timeout, false when the
    /// association was released and the transport was not closed within the ARTIM timeout (it then ends as released).
    /// </summary>
    public Task<bool> Expired => _expired.Task;

    /// <summary>The A-RELEASE-RP (or an A-ABORT) went through: from now on the timer is the ARTIM wait for the close.</summary>
    public void Released()
    {
        lock (_gate)
        {
            if (!_released)
            {
                _released = true;
                _timer.Change(_artimTimeout, Timeout.InfiniteTimeSpan);
            }
        }
    }

    public void Dispose() => _timer.Dispose();

    private void Fire()
    {
        lock (_gate)
        {
            if (_released)
            {
                _expired.TrySetResult(false);
                return;
            }

            var idleFor = _time.GetElapsedTime(_association.LastActivity);
            if (idleFor >= _idleTimeout)
            {
                _expired.TrySetResult(true);
                return;
            }

            _timer.Change(_idleTimeout - idleFor, Timeout.InfiniteTimeSpan);
        }
    }
}
