namespace ImagingProxy.Configuration;

/// <summary>The protocol a cluster's destinations speak, from the cluster metadata key <c>Protocol</c>.</summary>
public enum ClusterProtocol
{
    /// <summary>HTTP(S): DICOMweb, XDS SOAP, viewer web apps. The default when the metadata is absent.</summary>
    Http,

    /// <summary>DICOM upper layer over TCP (<c>tcp://host:port</c> destinations).</summary>
    Dicom,

    /// <summary>HL7 v2 over MLLP (<c>tcp://host:port</c> destinations).</summary>
    Mllp,
}
