namespace ImagingProxy.PeerTests.Peers;

/// <summary>What to run for a <see cref="PeerProcess"/>.</summary>
public sealed record PeerStartInfo(string FileName)
{
    public IReadOnlyList<string> Arguments { get; init; } = [];

    /// <summary>Added to the inherited environment. <c>TCP_NODELAY=1</c> is always set unless given here.</summary>
    public IReadOnlyDictionary<string, string> Environment { get; init; } = new Dictionary<string, string>();

    public string? WorkingDirectory { get; init; }

    /// <summary>Shown in messages; defaults to the file name.</summary>
    public string? Name { get; init; }
}
