using System.Text.Json;
using Microsoft.Extensions.Configuration.Json;

namespace ImagingProxy.Configuration;

/// <summary>
/// Reads a JSON configuration file. A load that fails to parse (a file cut short, an empty file) keeps the data of the
/// last load that parsed and sets <see cref="LoadError"/>; the reload event is raised as after any load. A load that
/// parses clears the error. .NET's own provider clears its data on a failed reload and throws from the file watcher's
/// callback instead, without a reload event.
/// </summary>
public sealed class LastParsedJsonConfigurationProvider : JsonConfigurationProvider, IConfigurationLoadError
{
    private volatile string? _loadError;

    public LastParsedJsonConfigurationProvider(LastParsedJsonConfigurationSource source)
        : base(source)
    {
    }

    public string? LoadError => _loadError;

    public override void Load(Stream stream)
    {
        try
        {
            base.Load(stream);
            _loadError = null;
        }
        catch (FormatException ex)
        {
            _loadError = ex.InnerException is JsonException json
                ? $"{FilePath()}: not valid JSON: {json.Message}"
                : $"{FilePath()}: {ex.Message}";
        }
        catch (IOException ex)
        {
            _loadError = $"{FilePath()}: could not be read: {ex.Message}";
        }
    }

    private string? FilePath() => Source.FileProvider?.GetFileInfo(Source.Path ?? string.Empty).PhysicalPath ?? Source.Path;
}
