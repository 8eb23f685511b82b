namespace ImagingProxy.Hosting;

/// <summary>The reload subscriptions of <c>Kestrel:Limits</c> (one per Kestrel server), disposed when the host stops.</summary>
internal sealed class KestrelLimitsSubscriptions : IDisposable
{
    private readonly List<IDisposable> _subscriptions = [];
    private readonly Lock _lock = new();

    public void Add(IDisposable subscription)
    {
        lock (_lock)
        {
            _subscriptions.Add(subscription);
        }
    }

    public void Dispose()
    {
        lock (_lock)
        {
            foreach (var subscription in _subscriptions)
            {
                subscription.Dispose();
            }

            _subscriptions.Clear();
        }
    }
}
