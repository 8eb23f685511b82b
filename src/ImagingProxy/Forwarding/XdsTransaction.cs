namespace ImagingProxy.Forwarding;

/// <summary>The IHE XDS.b transactions the Xds endpoint routes (ITI TF-2 §3.18, §3.41, §3.42, §3.43).</summary>
public enum XdsTransaction
{
    /// <summary>No action could be read from the request.</summary>
    Missing,

    /// <summary>An action was present but is not one of the four XDS.b transactions.</summary>
    Unknown,

    /// <summary>ITI-18 Registry Stored Query → registry.</summary>
    RegistryStoredQuery,

    /// <summary>ITI-41 Provide and Register Document Set-b (MTOM) → repository.</summary>
    ProvideAndRegisterDocumentSet,

    /// <summary>ITI-42 Register Document Set-b → registry.</summary>
    RegisterDocumentSet,

    /// <summary>ITI-43 Retrieve Document Set (MTOM) → repository.</summary>
    RetrieveDocumentSet,

    /// <summary>The Content-Type carries two different <c>action</c> parameters: refused, as neither can be trusted.</summary>
    Conflicting,
}
