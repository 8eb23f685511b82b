namespace ImagingProxy.Dicom;

/// <summary>Why a proxied association (or a connection that never became one) ended: one per association, in the log line and the metric tag.</summary>
public enum DicomAssociationEndReason
{
    /// <summary>A-RELEASE-RQ/RP completed (PS3.8 §9.3.6-9.3.7), then the transport closed.</summary>
    Released,

    /// <summary>The client sent A-ABORT (relayed to the node).</summary>
    ClientAborted,

    /// <summary>The node sent A-ABORT (relayed to the client).</summary>
    NodeAborted,

    /// <summary>No traffic either way for the idle timeout; both sides got A-ABORT.</summary>
    Idle,

    /// <summary>No whole A-ASSOCIATE-RQ within the ARTIM timeout (PS3.8 §9.1.2).</summary>
    Artim,

    /// <summary>Something other than a valid PDU stream arrived; the sender got A-ABORT.</summary>
    Malformed,

    /// <summary>
    /// No route for the Called (or Calling) AE title, or one that is not a valid AE title (blank, a control character,
    /// a non-ASCII byte, a backslash); the client got A-ASSOCIATE-RJ permanent, called- (or calling-) AE-title-not-recognized.
    /// </summary>
    NoRoute,

    /// <summary>No destination accepted the association; the client got A-ASSOCIATE-RJ transient (temporary congestion).</summary>
    NoDestination,

    /// <summary>A node rejected the association permanently; its A-ASSOCIATE-RJ went to the client as it was.</summary>
    Rejected,

    /// <summary>The proxy is stopping; both sides got A-ABORT.</summary>
    Shutdown,

    /// <summary>The client closed or reset the transport without release or abort; the node got A-ABORT.</summary>
    ClientClosed,

    /// <summary>The node closed or reset the transport without release or abort; the client got A-ABORT.</summary>
    NodeClosed,

    /// <summary>The A-ASSOCIATE-RQ arrived while the proxy was draining; the client got A-ASSOCIATE-RJ transient (local-limit-exceeded).</summary>
    Draining,

    /// <summary>
    /// The listener already had its <c>MaxAssociations</c> open when the A-ASSOCIATE-RQ arrived; the client got
    /// A-ASSOCIATE-RJ transient (local-limit-exceeded).
    /// </summary>
    ListenerLimit,
}
