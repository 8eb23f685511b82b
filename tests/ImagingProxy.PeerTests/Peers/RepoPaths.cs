namespace ImagingProxy.PeerTests.Peers;

/// <summary>Finds files of the repository (tests/data) from the test binaries' folder.</summary>
public static class RepoPaths
{
    private static readonly Lazy<string> s_root = new(FindRoot);

    public static string Root => s_root.Value;

    public static string TestData(params string[] parts) => Path.Combine([Root, "tests", "data", .. parts]);

    private static string FindRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "ImagingProxy.sln")) && Directory.Exists(Path.Combine(dir.FullName, "tests", "data")))
            {
                return dir.FullName;
            }
        }

        throw new DirectoryNotFoundException($"No repository root (ImagingProxy.sln with tests/data) above {AppContext.BaseDirectory}.");
    }
}
