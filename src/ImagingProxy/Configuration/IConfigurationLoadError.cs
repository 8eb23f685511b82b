namespace ImagingProxy.Configuration;

/// <summary>
/// A configuration provider whose last load failed while it kept the data it had: the <see cref="ConfigurationGate"/>
/// rejects every reload while one of them reports an error, so that no change is judged without that source.
/// </summary>
public interface IConfigurationLoadError
{
    /// <summary>Why the last load failed (the file and the parser's message), or null when it succeeded.</summary>
    string? LoadError { get; }
}
