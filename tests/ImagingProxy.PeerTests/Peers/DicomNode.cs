namespace ImagingProxy.PeerTests.Peers;

/// <summary>A DICOM application entity on the network: AE title, host and port (PS3.8 §7.1.1.2).</summary>
public sealed record DicomNode(string AeTitle, string Host, int Port);
