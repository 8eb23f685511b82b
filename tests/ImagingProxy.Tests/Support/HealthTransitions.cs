using ImagingProxy.Health;

namespace ImagingProxy.Tests.Support;

/// <summary>Records a tracker's health transitions as <c>"destination kind health"</c> lines, from any thread.</summary>
internal sealed class HealthTransitions
{
    private readonly List<string> _seen = [];

    public HealthTransitions(DestinationHealthTracker tracker)
    {
        ArgumentNullException.ThrowIfNull(tracker);
        tracker.Transition += (_, destination, kind, _, now) =>
        {
            lock (_seen)
            {
                _seen.Add($"{destination} {kind} {now}");
            }
        };
    }

    /// <summary>The transitions so far, oldest first.</summary>
    public IReadOnlyList<string> Seen
    {
        get
        {
            lock (_seen)
            {
                return [.. _seen];
            }
        }
    }
}
