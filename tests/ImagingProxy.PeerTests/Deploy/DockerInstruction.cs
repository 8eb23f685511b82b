namespace ImagingProxy.PeerTests.Deploy;

/// <summary>One Dockerfile instruction after comments are dropped and continuation lines joined.</summary>
/// <param name="Keyword">The instruction in upper case (<c>COPY</c>, <c>RUN</c> ...).</param>
/// <param name="Arguments">Everything after the keyword, continuation lines joined with a space.</param>
/// <param name="Line">The 1-based line where the instruction starts.</param>
public sealed record DockerInstruction(string Keyword, string Arguments, int Line)
{
    public override string ToString() => $"line {Line}: {Keyword} {Arguments}";
}
