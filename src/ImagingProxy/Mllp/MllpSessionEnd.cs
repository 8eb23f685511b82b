namespace ImagingProxy.Mllp;

/// <summary>Why an inbound MLLP connection ended (a log field). <see cref="ClientClosed"/> also means "still open" in the read loop.</summary>
internal enum MllpSessionEnd
{
    /// <summary>The sender closed the connection between messages.</summary>
    ClientClosed,

    /// <summary>The connection was reset or aborted, or the sender stopped reading.</summary>
    ClientAborted,

    /// <summary>A frame without a readable MSH-10: closed, nothing forwarded.</summary>
    MalformedFrame,

    /// <summary>The host is stopping: closed after the message in flight.</summary>
    Shutdown,
}
