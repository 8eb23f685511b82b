namespace ImagingProxy.Configuration;

/// <summary>A server certificate: PEM (<c>Path</c> + <c>KeyPath</c>) or PFX (<c>Path</c> + optional <c>Password</c>), as Kestrel's own keys.</summary>
public sealed record CertificateConfig
{
    public string? Path { get; init; }

    public string? KeyPath { get; init; }

    public string? Password { get; init; }
}
