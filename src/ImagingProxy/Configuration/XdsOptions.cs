namespace ImagingProxy.Configuration;

/// <summary><c>ImagingProxy:Xds</c>: the clusters behind the Xds endpoint (IHE ITI TF-2 §3.18, §3.41-3.43).</summary>
public sealed record XdsOptions
{
    /// <summary>Receives ITI-18 Registry Stored Query and ITI-42 Register Document Set-b.</summary>
    public string? RegistryCluster { get; init; }

    /// <summary>Receives ITI-41 Provide and Register Document Set-b and ITI-43 Retrieve Document Set.</summary>
    public string? RepositoryCluster { get; init; }
}
