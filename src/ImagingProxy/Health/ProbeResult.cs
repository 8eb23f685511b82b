namespace ImagingProxy.Health;

/// <summary>The outcome of one active probe of one destination.</summary>
public readonly record struct ProbeResult(bool Healthy, string Detail)
{
    public static ProbeResult Success(string detail) => new(true, detail);

    public static ProbeResult Failure(string detail) => new(false, detail);
}
