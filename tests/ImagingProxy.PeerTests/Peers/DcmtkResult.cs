namespace ImagingProxy.PeerTests.Peers;

/// <summary>How a dcmtk client run ended: exit code and everything it printed (stdout and stderr).</summary>
public sealed record DcmtkResult(string Tool, int ExitCode, string Output)
{
    public bool Succeeded => ExitCode == 0;

    public override string ToString() => $"{Tool} exited with {ExitCode}:\n{Output}";
}
