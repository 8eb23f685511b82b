namespace ImagingProxy.Mllp;

/// <summary>Why ImagingProxy answered a message itself or did not forward inbound bytes (a log field and metric tag).</summary>
internal enum MllpRejectReason
{
    /// <summary>Bytes before &lt;SB&gt; or a frame cut short by a new &lt;SB&gt;: dropped, the connection continues.</summary>
    BytesOutsideFrame,

    /// <summary>A frame over the maximum size: NAK, then resynchronise at the next frame.</summary>
    FrameTooLarge,

    /// <summary>A frame without a readable MSH or MSH-10: the connection is closed.</summary>
    UnparseableHeader,

    /// <summary>MSH-9 is empty: NAK.</summary>
    MissingMessageType,

    /// <summary>MSH-2 declares no usable encoding characters (MSH-10 read with MSH-1 and the usual ones): NAK.</summary>
    BadEncodingCharacters,

    /// <summary>No route matches: NAK.</summary>
    NoRoute,

    /// <summary>The route's cluster is not (or no longer) configured: NAK.</summary>
    UnknownCluster,

    /// <summary>The cluster has no available node: NAK.</summary>
    NoDestination,

    /// <summary>Every attempt to deliver failed: NAK.</summary>
    Undelivered,

    /// <summary>The stream ended inside a frame.</summary>
    IncompleteFrame,

    /// <summary>Delivering failed inside ImagingProxy (a fault of ours, logged): NAK, the sender sends again.</summary>
    InternalError,

    /// <summary>The connection is over its listener's <c>MaxConnections</c>: NAK, not forwarded, then the connection closes.</summary>
    ListenerLimit,
}

/// <summary>Names of <see cref="MllpRejectReason"/> for tags.</summary>
internal static class MllpRejectReasons
{
    public static string Name(MllpRejectReason reason) => reason switch
    {
        MllpRejectReason.BytesOutsideFrame => "bytes_outside_frame",
        MllpRejectReason.FrameTooLarge => "frame_too_large",
        MllpRejectReason.UnparseableHeader => "unparseable_header",
        MllpRejectReason.MissingMessageType => "missing_message_type",
        MllpRejectReason.BadEncodingCharacters => "bad_encoding_characters",
        MllpRejectReason.NoRoute => "no_route",
        MllpRejectReason.UnknownCluster => "unknown_cluster",
        MllpRejectReason.NoDestination => "no_destination",
        MllpRejectReason.Undelivered => "undelivered",
        MllpRejectReason.IncompleteFrame => "incomplete_frame",
        MllpRejectReason.InternalError => "internal_error",
        MllpRejectReason.ListenerLimit => "listener_limit",
        _ => "other",
    };
}
