using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Configuration;

/// <summary>
/// Holds the last configuration that passed validation. YARP, Kestrel and the DICOM/MLLP features all read from
/// this provider, never from the raw files, so a bad edit can never be half-applied: either every section moves to
/// the new values together or none does.
/// </summary>
public sealed class LastGoodConfigurationProvider : ConfigurationProvider, IConfigurationSource
{
    public IConfigurationProvider Build(IConfigurationBuilder builder) => this;

    /// <summary>Replaces every key and fires the reload token once.</summary>
    public void Replace(IDictionary<string, string?> data)
    {
        Data = new Dictionary<string, string?>(data, StringComparer.OrdinalIgnoreCase);
        OnReload();
    }
}
