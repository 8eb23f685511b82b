namespace ImagingProxy.Dicom;

/// <summary>
/// The fields an A-ASSOCIATE-RQ and an A-ASSOCIATE-AC share (PS3.8 §9.3.2, §9.3.3: the same items in the same order),
/// as <see cref="AssociateParser"/> decoded them. AE titles are trimmed.
/// </summary>
public abstract class AssociatePdu
{
    private protected AssociatePdu(in AssociateFields fields)
    {
        ProtocolVersion = fields.ProtocolVersion;
        CalledAeTitle = fields.CalledAeTitle;
        CallingAeTitle = fields.CallingAeTitle;
        ApplicationContextName = fields.ApplicationContextName;
        PresentationContexts = fields.PresentationContexts;
        UserInformation = fields.UserInformation;
    }

    public ushort ProtocolVersion { get; }

    /// <summary>The AE the requestor wants (in an RQ, the routing key).</summary>
    public string CalledAeTitle { get; }

    /// <summary>The requestor.</summary>
    public string CallingAeTitle { get; }

    public string ApplicationContextName { get; }

    /// <summary>In an RQ the proposed contexts; in an AC per context the result and (when accepted) the one transfer syntax chosen.</summary>
    public IReadOnlyList<PresentationContext> PresentationContexts { get; }

    public UserInformation UserInformation { get; }
}
