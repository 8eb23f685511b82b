using Microsoft.Extensions.Logging;

namespace ImagingProxy.Dicom;

public sealed partial class DicomConnectionHandler
{
    private static partial class Log
    {
        [LoggerMessage(EventId = 300, Message =
            "DICOM association {AssociationId} ended: {EndReason}; {CallingAeTitle} -> {CalledAeTitle} from {ClientEndPoint} on {Listener}, " +
            "route {Route}, cluster {Cluster}, destination {Destination} after {Attempts} attempt(s); bytes client->node {BytesFromClient}, " +
            "node->client {BytesFromNode}; DIMSE {DimseCommands}; {DurationMs:F1} ms")]
        public static partial void AssociationEnded(
            ILogger logger,
            LogLevel level,
            string associationId,
            string endReason,
            string callingAeTitle,
            string calledAeTitle,
            string clientEndPoint,
            string listener,
            string route,
            string cluster,
            string destination,
            int attempts,
            long bytesFromClient,
            long bytesFromNode,
            string dimseCommands,
            double durationMs);

        [LoggerMessage(EventId = 301, Level = LogLevel.Warning, Message =
            "DICOM association {AssociationId}: destination {Destination} of cluster {Cluster} failed before A-ASSOCIATE-AC ({Failure}); the next destination, if any, is tried.")]
        public static partial void AttemptFailed(ILogger logger, string associationId, string destination, string cluster, string failure);

        [LoggerMessage(EventId = 302, Level = LogLevel.Warning, Message =
            "DICOM association {AssociationId}: listener {Listener} already has its {MaxAssociations} associations open; " +
            "{CallingAeTitle} -> {CalledAeTitle} rejected transiently (local-limit-exceeded), the client may retry.")]
        public static partial void ListenerLimit(ILogger logger, string associationId, string listener, int maxAssociations, string callingAeTitle, string calledAeTitle);

        [LoggerMessage(EventId = 303, Level = LogLevel.Warning, Message =
            "DICOM association {AssociationId}: the A-ASSOCIATE-RQ from {ClientEndPoint} on {Listener} was refused, {ParseError}: {Problem}; answered with {Answer}.")]
        public static partial void RequestRefused(ILogger logger, string associationId, string clientEndPoint, string listener, AssociateParseError parseError, string problem, string answer);

        [LoggerMessage(EventId = 308, Level = LogLevel.Warning, Message =
            "DICOM association {AssociationId}: the first PDU from {ClientEndPoint} on {Listener} was not an A-ASSOCIATE-RQ ({Problem}); answered with {Answer}.")]
        public static partial void FirstPduRefused(ILogger logger, string associationId, string clientEndPoint, string listener, string problem, string answer);

        [LoggerMessage(EventId = 309, Level = LogLevel.Information, Message =
            "DICOM association {AssociationId}: destination {Destination} of cluster {Cluster} rejected {CallingAeTitle} -> {CalledAeTitle} permanently ({Reason}); its A-ASSOCIATE-RJ was relayed to the client.")]
        public static partial void NodeRejected(ILogger logger, string associationId, string destination, string cluster, string reason, string callingAeTitle, string calledAeTitle);

        [LoggerMessage(EventId = 315, Level = LogLevel.Warning, Message =
            "DICOM association {AssociationId}: destination {Destination} of cluster {Cluster} aborted the association ({Abort}); relayed to the client.")]
        public static partial void NodeAborted(ILogger logger, string associationId, string destination, string cluster, string abort);

        [LoggerMessage(EventId = 304, Level = LogLevel.Warning, Message =
            "DICOM association {AssociationId}: the {Side} sent a broken PDU stream after the A-ASSOCIATE-AC ({Error}); " +
            "not relayed, A-ABORT sent to both sides ({CallingAeTitle} -> {CalledAeTitle} from {ClientEndPoint}, destination {Destination}).")]
        public static partial void StreamMalformed(ILogger logger, string associationId, string side, DimseStreamError error, string callingAeTitle, string calledAeTitle, string clientEndPoint, string destination);

        [LoggerMessage(EventId = 305, Level = LogLevel.Information, Message =
            "DICOM association {AssociationId}: every available destination of cluster {Cluster} is at its MaxConcurrent; waiting up to {Limit} for a place (QueueTimeout).")]
        public static partial void Queued(ILogger logger, string associationId, string cluster, TimeSpan limit);

        [LoggerMessage(EventId = 306, Level = LogLevel.Information, Message =
            "DICOM association {AssociationId}: a place at {Destination} of cluster {Cluster} after {Waited} in the queue.")]
        public static partial void Placed(ILogger logger, string associationId, string destination, string cluster, TimeSpan waited);

        [LoggerMessage(EventId = 307, Level = LogLevel.Warning, Message =
            "DICOM association {AssociationId}: left the queue of cluster {Cluster} after {Waited}, {Why}; answered A-ASSOCIATE-RJ transient (temporary congestion).")]
        public static partial void QueueEnded(ILogger logger, string associationId, string cluster, TimeSpan waited, string why);
    }
}
