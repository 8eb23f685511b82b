namespace ImagingProxy.Dicom;

/// <summary>The User Information item (0x50) fields the proxy uses (PS3.8 §9.3.2.3, Annex D; PS3.7 Annex D.3.3).</summary>
/// <param name="MaxPduLength">Maximum Length sub-item (0x51): largest P-DATA-TF PDU-length the sender receives; 0 = unlimited (PS3.8 D.1).</param>
/// <param name="ImplementationClassUid">Sub-item 0x52; null if the peer omitted it.</param>
/// <param name="ImplementationVersionName">Sub-item 0x55; null if absent.</param>
/// <param name="HasUserIdentity">A User Identity sub-item (0x58 in an RQ, 0x59 in an AC) is present. Its content (maybe a password) is never kept.</param>
public sealed record UserInformation(
    uint MaxPduLength,
    string? ImplementationClassUid,
    string? ImplementationVersionName,
    bool HasUserIdentity);
