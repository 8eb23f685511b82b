using System.Collections.Concurrent;

namespace ImagingProxy.Hosting;

/// <summary>Every listener the host configured, by name, for /status and readiness.</summary>
public sealed class ListenerRegistry
{
    private readonly ConcurrentDictionary<string, ProxyListener> _listeners = new(StringComparer.OrdinalIgnoreCase);

    public void Add(ProxyListener listener) => _listeners[listener.Name] = listener;

    public IReadOnlyCollection<ProxyListener> All => _listeners.Values.OrderBy(l => l.Name, StringComparer.Ordinal).ToArray();

    public bool TryGet(string name, out ProxyListener listener) => _listeners.TryGetValue(name, out listener!);
}
