namespace ImagingProxy.PeerTests.Peers;

/// <summary>A fresh directory under the system temp folder, deleted with everything in it on dispose.</summary>
public sealed class TempDirectory : IDisposable
{
    private TempDirectory(string path) => Path = path;

    public string Path { get; }

    public static TempDirectory Create(string prefix = "imagingproxy-") =>
        new(Directory.CreateTempSubdirectory(prefix).FullName);

    /// <summary>A sub-directory, created if missing.</summary>
    public string Sub(string name) => Directory.CreateDirectory(System.IO.Path.Combine(Path, name)).FullName;

    public void Dispose()
    {
        try
        {
            Directory.Delete(Path, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
        catch (IOException) when (Directory.Exists(Path))
        {
            // A forked child of a peer killed a moment ago may still have added a file while the tree was walked.
            Directory.Delete(Path, recursive: true);
        }
    }

    public override string ToString() => Path;
}
