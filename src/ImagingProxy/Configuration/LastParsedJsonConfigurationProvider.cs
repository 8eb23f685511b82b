using System.Text.Json;
using Microsoft.Extensions.Configuration.Json;
using Microsoft.Extensions.FileProviders;

namespace ImagingProxy.Configuration;

/// <summary>
/// Reads a JSON configuration file. A load that fails to parse (a file cut short, an empty file) keeps the data of the
/// last load that parsed and sets <see cref="LoadError"/>; the reload event is raised as after any load. A load that
/// parses clears the error. .NET's own provider clears its data on a failed reload and throws from the file watcher's
/// callback instead, without a reload event.
/// A required file (<c>--config</c>) that is missing when a reload runs (deleted, or between the two steps of an editor's
/// or a tool's replace) is an error too: .NET's provider then reads it as empty, and the reload would otherwise be judged
/// without the operator's routes and clusters.
/// </summary>
public sealed class LastParsedJsonConfigurationProvider : JsonConfigurationProvider, IConfigurationLoadError
{
    private volatile string? _loadError;

    /// <summary>The data of the last load that parsed: a load that found no file replaces it without parsing anything.</summary>
    private IDictionary<string, string?>? _parsed;

    public LastParsedJsonConfigurationProvider(LastParsedJsonConfigurationSource source)
        : base(source)
    {
    }

    /// <summary>Why the file's content in force is not what the file holds now: missing (a required file), or not parsed; null when read.</summary>
    public string? LoadError => Missing() ?? _loadError;

    public override void Load(Stream stream)
    {
        try
        {
            base.Load(stream);
            _parsed = Data;
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

    /// <summary>
    /// The error of a required file that was not there when it was last loaded (its data was then replaced by an empty
    /// set without a parse), or is not there now; checked when asked (a reload, not per request). A file put back at once
    /// is loaded again by its own change.
    /// </summary>
    private string? Missing()
    {
        var replacedUnparsed = _parsed is not null && !ReferenceEquals(Data, _parsed);
        if (Source.Optional
            || (!replacedUnparsed && Source.FileProvider?.GetFileInfo(Source.Path ?? string.Empty) is { Exists: true }))
        {
            return null;
        }

        return $"{FilePath()}: file not found (deleted, or being replaced); the configuration in force stays until the file is back.";
    }

    private string? FilePath()
        => Source.FileProvider?.GetFileInfo(Source.Path ?? string.Empty).PhysicalPath
            ?? (Source.FileProvider is PhysicalFileProvider physical && Source.Path is { } path ? Path.Combine(physical.Root, path) : Source.Path);
}
