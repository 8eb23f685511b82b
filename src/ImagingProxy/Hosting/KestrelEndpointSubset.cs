using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Primitives;

namespace ImagingProxy.Hosting;

/// <summary>
/// The <c>Kestrel</c> section with only some of its named endpoints, kept current on every reload of the section: what
/// one of the two Kestrel servers of <see cref="SplitKestrelServer"/> loads with
/// <c>KestrelServerOptions.Configure(config, reloadOnChange: true)</c>. Everything outside <c>Endpoints</c>
/// (<c>Certificates</c>, <c>EndpointDefaults</c> ...) is kept for both servers.
/// </summary>
public sealed class KestrelEndpointSubset : ConfigurationProvider, IConfigurationSource, IDisposable
{
    private const string EndpointsPrefix = "Endpoints:";

    private readonly IConfigurationSection _kestrel;
    private readonly Func<string, bool> _keepEndpoint;
    private readonly IDisposable _subscription;

    private KestrelEndpointSubset(IConfigurationSection kestrel, Func<string, bool> keepEndpoint)
    {
        _kestrel = kestrel;
        _keepEndpoint = keepEndpoint;
        _subscription = ChangeToken.OnChange(kestrel.GetReloadToken, () =>
        {
            Load();
            OnReload();
        });
    }

    /// <summary>The section with the endpoint <paramref name="endpoint"/> only.</summary>
    public static IConfigurationRoot Only(IConfigurationSection kestrel, string endpoint)
        => Create(kestrel, name => string.Equals(name, endpoint, StringComparison.OrdinalIgnoreCase));

    /// <summary>The section with every endpoint but <paramref name="endpoint"/>.</summary>
    public static IConfigurationRoot Without(IConfigurationSection kestrel, string endpoint)
        => Create(kestrel, name => !string.Equals(name, endpoint, StringComparison.OrdinalIgnoreCase));

    private static IConfigurationRoot Create(IConfigurationSection kestrel, Func<string, bool> keepEndpoint)
        => new ConfigurationBuilder().Add(new KestrelEndpointSubset(kestrel, keepEndpoint)).Build();

    public IConfigurationProvider Build(IConfigurationBuilder builder) => this;

    public override void Load()
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        foreach (var (key, value) in _kestrel.AsEnumerable(makePathsRelative: true))
        {
            if (value is not null && Keeps(key))
            {
                data[key] = value;
            }
        }

        Data = data;
    }

    /// <summary>Keys look like <c>Endpoints:NAME:Url</c>; anything not under <c>Endpoints</c> is kept.</summary>
    private bool Keeps(string key)
    {
        if (!key.StartsWith(EndpointsPrefix, StringComparison.OrdinalIgnoreCase))
        {
            return true;
        }

        var rest = key.AsSpan(EndpointsPrefix.Length);
        var separator = rest.IndexOf(ConfigurationPath.KeyDelimiter, StringComparison.Ordinal);
        return _keepEndpoint((separator < 0 ? rest : rest[..separator]).ToString());
    }

    public void Dispose() => _subscription.Dispose();
}
