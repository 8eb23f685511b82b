namespace ImagingProxy.PeerTests.Deploy;

/// <summary>
/// The filesystem of one Dockerfile stage as a directory of this machine: container path <c>/src</c> is
/// <c>&lt;Root&gt;/src</c>. Tracks the stage's WORKDIR and copies files in with COPY's rules.
/// </summary>
public sealed class StageFileSystem
{
    public StageFileSystem(string root)
    {
        Root = root;
        Directory.CreateDirectory(root);
    }

    public string Root { get; }

    /// <summary>The WORKDIR as a container path (the images' default is <c>/</c>).</summary>
    public string WorkingDirectory { get; private set; } = "/";

    /// <summary>The WORKDIR on this machine.</summary>
    public string HostWorkingDirectory => Map(WorkingDirectory);

    /// <summary>A container path (absolute, or relative to the WORKDIR) as a path of this machine.</summary>
    public string Map(string containerPath)
    {
        var absolute = Path.GetFullPath(containerPath, WorkingDirectory);
        return absolute == "/" ? Root : Path.Join(Root, absolute);
    }

    public void ChangeWorkingDirectory(string containerPath)
    {
        WorkingDirectory = Path.GetFullPath(containerPath, WorkingDirectory);
        Directory.CreateDirectory(HostWorkingDirectory);
    }

    /// <summary>
    /// COPY's rules for one source: a directory's contents go into the destination directory; a file goes into the
    /// destination when it ends with '/' (or when several sources are copied), else becomes the destination.
    /// <paramref name="include"/> sees each file's path relative to <paramref name="sourceRoot"/>.
    /// </summary>
    public int Copy(string sourceRoot, string relativeSource, string destination, bool intoDirectory, Func<string, bool> include)
    {
        var source = Path.Join(sourceRoot, relativeSource);
        var target = Map(destination);
        if (File.Exists(source))
        {
            var file = intoDirectory ? Path.Join(target, Path.GetFileName(source)) : target;
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            File.Copy(source, file, overwrite: true);
            return 1;
        }

        var copied = 0;
        Directory.CreateDirectory(target);
        foreach (var file in Directory.EnumerateFiles(source, "*", SearchOption.AllDirectories))
        {
            var fromRoot = Path.GetRelativePath(sourceRoot, file).Replace('\\', '/');
            if (!include(fromRoot))
            {
                continue;
            }

            var to = Path.Join(target, Path.GetRelativePath(source, file));
            Directory.CreateDirectory(Path.GetDirectoryName(to)!);
            File.Copy(file, to, overwrite: true);
            copied++;
        }

        return copied;
    }
}
