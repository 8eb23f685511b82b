using ImagingProxy.Configuration;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Mllp;

/// <summary>
/// The current <see cref="MllpRouteTable"/>, rebuilt after each accepted reload of the validated configuration
/// (<see cref="ConfigurationGate.Accepted"/>: never a change YARP is still judging or refused, never keys of two
/// generations in one table), so a reload applies to the next message.
/// </summary>
internal sealed class MllpProxyConfiguration(ConfigurationGate gate)
{
    private readonly Lock _lock = new();

    /// <summary>The table of the gate's snapshot it was loaded from (a class: read whole by the connections, without a lock).</summary>
    private Generation? _current;

    public MllpRouteTable Current
    {
        get
        {
            // One immutable snapshot per applied change: its reference is the generation.
            var accepted = gate.Accepted;
            var current = Volatile.Read(ref _current);
            if (current is not null && ReferenceEquals(current.Source, accepted))
            {
                return current.Table;
            }

            lock (_lock)
            {
                accepted = gate.Accepted;
                current = _current;
                if (current is null || !ReferenceEquals(current.Source, accepted))
                {
                    current = new Generation(MllpRouteTable.Load(accepted), accepted);
                    Volatile.Write(ref _current, current);
                }

                return current.Table;
            }
        }
    }

    private sealed record Generation(MllpRouteTable Table, IConfiguration Source);
}
