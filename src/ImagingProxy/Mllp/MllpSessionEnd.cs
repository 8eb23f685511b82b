namespace ImagingProxy.Mllp;

/// <summary>Why an inbound MLLP connection ended (a log field and the <c>reason</c> label of connections.closed).</summary>
internal enum MllpSessionEnd
{
    /// <summary>The sender closed the connection between messages.</summary>
    ClientClosed,

    /// <summary>The connection was reset or aborted.</summary>
    ClientAborted,

    /// <summary>A frame without a readable MSH-10: closed, nothing forwarded.</summary>
    MalformedFrame,

    /// <summary>The host is draining: closed when idle or right after the message in flight was answered.</summary>
    Shutdown,

    /// <summary>The drain deadline passed with a message unfinished (being received, or awaiting a node's ACK).</summary>
    DrainDeadline,

    /// <summary>No byte received for <see cref="MllpRouteTable.IdleTimeout"/>.</summary>
    IdleTimeout,

    /// <summary>A reply waited <see cref="MllpReplyWriter.SendTimeout"/> for the sender to read (it stopped reading): aborted.</summary>
    ReplyTimeout,

    /// <summary>The listener had its <c>MaxConnections</c> open: the first message got a NAK, then the connection closed.</summary>
    ListenerLimit,
}

/// <summary>Metric label values of <see cref="MllpSessionEnd"/>.</summary>
internal static class MllpSessionEnds
{
    public static string Name(MllpSessionEnd end) => end switch
    {
        MllpSessionEnd.ClientClosed => "client_closed",
        MllpSessionEnd.ClientAborted => "client_aborted",
        MllpSessionEnd.MalformedFrame => "malformed_frame",
        MllpSessionEnd.Shutdown => "shutdown",
        MllpSessionEnd.DrainDeadline => "drain_deadline",
        MllpSessionEnd.IdleTimeout => "idle_timeout",
        MllpSessionEnd.ListenerLimit => "listener_limit",
        MllpSessionEnd.ReplyTimeout => "reply_timeout",
        _ => "unknown",
    };
}
