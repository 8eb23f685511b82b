using Microsoft.Extensions.Logging;

namespace ImagingProxy.Mllp;

internal sealed partial class MllpConnectionHandler
{
    private static partial class Log
    {
        [LoggerMessage(EventId = 4001, Level = LogLevel.Debug, Message = "MLLP connection {ConnectionId} opened on listener '{Listener}'.")]
        public static partial void ConnectionOpened(ILogger logger, string connectionId, string listener);

        [LoggerMessage(EventId = 4002, Level = LogLevel.Debug, Message = "MLLP connection {ConnectionId} closed: {Reason}.")]
        public static partial void ConnectionClosed(ILogger logger, string connectionId, MllpSessionEnd reason);

        [LoggerMessage(EventId = 4003, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: {Length} byte(s) outside a frame discarded.")]
        public static partial void BytesOutsideFrame(ILogger logger, string connectionId, long length);

        [LoggerMessage(EventId = 4004, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: frame without a readable MSH/MSH-10 ({Status}, {Length} bytes); not forwarded, closing.")]
        public static partial void UnparseableFrame(ILogger logger, string connectionId, Hl7ReadStatus status, long length);

        [LoggerMessage(EventId = 4005, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: frame over {MaxFrameSize} bytes without a readable MSH-10; closing.")]
        public static partial void OversizeUnreadable(ILogger logger, string connectionId, int maxFrameSize);

        [LoggerMessage(EventId = 4006, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: message {ControlId} answered with ImagingProxy's NAK ({Reason}): {Text}")]
        public static partial void Nak(ILogger logger, string connectionId, string controlId, string reason, string text);

        [LoggerMessage(EventId = 4007, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: stream ended inside a frame ({Length} byte(s) discarded).")]
        public static partial void IncompleteFrame(ILogger logger, string connectionId, long length);

        [LoggerMessage(EventId = 4008, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId} closed at the drain deadline while {State}; the sender got no ACK and must send again.")]
        public static partial void DrainDeadline(ILogger logger, string connectionId, string state);

        [LoggerMessage(EventId = 4009, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: the drain deadline passed while message {ControlId} was being delivered ({Attempts} attempt(s) started); no ACK relayed.")]
        public static partial void AbortedInFlight(ILogger logger, string connectionId, string controlId, int attempts);

        [LoggerMessage(EventId = 4010, Level = LogLevel.Information, Message = "MLLP connection {ConnectionId}: no byte received for {IdleTimeout}; closing (inside a frame: {InsideFrame}).")]
        public static partial void IdleTimeout(ILogger logger, string connectionId, TimeSpan idleTimeout, bool insideFrame);

        [LoggerMessage(EventId = 4011, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: the sender read no reply to message {ControlId} for {Timeout} (it stopped reading); connection aborted.")]
        public static partial void ReplyTimeout(ILogger logger, string connectionId, string controlId, TimeSpan timeout);

        [LoggerMessage(EventId = 4012, Level = LogLevel.Warning, Message = "MLLP connection {ConnectionId}: message {ControlId} (MSH-15 NE) not delivered to cluster {Cluster} ({Reason}, {Attempts} attempt(s)); no NAK sent, the sender asked for no accept acknowledgment.")]
        public static partial void NotDeliveredWithoutAck(ILogger logger, string connectionId, string controlId, string cluster, string reason, int attempts);
    }
}
