namespace ImagingProxy.Dicom;

/// <summary>
/// What a <see cref="DimseObserver"/> reports, in stream order, from inside <see cref="DimseObserver.Observe(ReadOnlySpan{byte})"/>.
/// Implementations must be quick and must not throw: they run on the relay path.
/// </summary>
public interface IDimseObserverEvents
{
    /// <summary>A PDU header was read (A-RELEASE-RQ/RP are reported only here).</summary>
    void OnPdu(PduHeader header);

    /// <summary>A whole command set was reassembled and decoded. <paramref name="command"/> is only valid during the call.</summary>
    void OnCommand(byte presentationContextId, DimseCommand command);

    /// <summary>A command set exceeded the observer's limit or could not be decoded; <paramref name="length"/> is its size in bytes.</summary>
    void OnCommandUnparsed(byte presentationContextId, long length);

    /// <summary>An A-ASSOCIATE-RJ body was read (PS3.8 §9.3.4).</summary>
    void OnAssociateReject(AssociateRejectResult result, AssociateRejectSource source, byte reason);

    /// <summary>An A-ABORT body was read (PS3.8 §9.3.8).</summary>
    void OnAbort(AbortSource source, AbortReason reason);

    /// <summary>The framing is broken; reported once, after which the observer only counts bytes.</summary>
    void OnMalformed(DimseStreamError error);
}
