using ImagingProxy.Configuration;
using Microsoft.Extensions.Primitives;

namespace ImagingProxy.Mllp;

/// <summary>
/// The current <see cref="MllpRouteTable"/>, rebuilt after each accepted reload of the validated configuration
/// (<see cref="ConfigurationGate.Configuration"/>), so a reload applies to the next message.
/// </summary>
internal sealed class MllpProxyConfiguration(ConfigurationGate gate)
{
    private readonly Lock _lock = new();
    private (MllpRouteTable Table, IChangeToken Token)? _current;

    public MllpRouteTable Current
    {
        get
        {
            var current = _current;
            if (current is { Token.HasChanged: false } valid)
            {
                return valid.Table;
            }

            lock (_lock)
            {
                if (_current is not { Token.HasChanged: false })
                {
                    // Take the token before reading, so a reload during the read is seen next time.
                    var token = gate.Configuration.GetReloadToken();
                    _current = (MllpRouteTable.Load(gate.Configuration), token);
                }

                return _current.Value.Table;
            }
        }
    }
}
