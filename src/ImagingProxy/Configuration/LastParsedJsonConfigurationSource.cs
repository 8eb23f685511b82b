using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Configuration.Json;

namespace ImagingProxy.Configuration;

/// <summary>
/// A JSON configuration file whose provider (<see cref="LastParsedJsonConfigurationProvider"/>) keeps the last content
/// that parsed when a load does not, and reports the error, instead of clearing its data and throwing.
/// </summary>
public sealed class LastParsedJsonConfigurationSource : JsonConfigurationSource
{
    public override IConfigurationProvider Build(IConfigurationBuilder builder)
    {
        EnsureDefaults(builder);
        return new LastParsedJsonConfigurationProvider(this);
    }

    /// <summary>The file at <paramref name="path"/> (absolute, or relative to the builder's base path).</summary>
    public static LastParsedJsonConfigurationSource For(string path, bool optional, bool reloadOnChange)
    {
        var source = new LastParsedJsonConfigurationSource { Path = path, Optional = optional, ReloadOnChange = reloadOnChange };
        source.ResolveFileProvider();
        return source;
    }

    /// <summary>Replaces every other JSON file source of <paramref name="builder"/> (the host's appsettings files) with one of these, same file and settings.</summary>
    public static void ReplaceJsonFiles(IConfigurationBuilder builder)
    {
        for (var i = 0; i < builder.Sources.Count; i++)
        {
            if (builder.Sources[i] is JsonConfigurationSource { Path: { } path } json and not LastParsedJsonConfigurationSource)
            {
                builder.Sources[i] = new LastParsedJsonConfigurationSource
                {
                    FileProvider = json.FileProvider,
                    Path = path,
                    Optional = json.Optional,
                    ReloadOnChange = json.ReloadOnChange,
                    ReloadDelay = json.ReloadDelay,
                    OnLoadException = json.OnLoadException,
                };
            }
        }
    }
}
