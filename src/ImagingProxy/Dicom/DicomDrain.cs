using ImagingProxy.Hosting;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Dicom;

/// <summary>
/// The DICOM side of the SIGTERM drain (<see cref="ConnectionDrain"/>). An association is never ended by the close
/// request: one already relaying runs until it is released, an A-ASSOCIATE-RQ read after the drain began is rejected
/// transiently, and at the drain deadline what remains gets A-ABORT on both sides while both transports are still open.
/// </summary>
public sealed partial class DicomDrain(ConnectionDrain drain, ILogger<DicomDrain> logger)
{
    private int _rejected;
    private int _aborted;

    /// <summary>True once the host is stopping: new associations are refused.</summary>
    public bool IsDraining => drain.IsDraining;

    /// <summary>Fires <see cref="ConnectionDrain.RequestWait"/> after the drain began (or at its deadline if sooner).</summary>
    public CancellationToken RequestWaitOver => drain.RequestWaitOver;

    /// <summary>Fires at the drain deadline (<see cref="ConnectionDrain.Deadline"/>): the associations still open are aborted.</summary>
    public CancellationToken Deadline => drain.Deadline;

    /// <summary>How long after stopping began the remaining associations are aborted.</summary>
    public TimeSpan DeadlineAfter => drain.DeadlineAfter;

    /// <summary>Associations refused because they arrived during the drain.</summary>
    public int Rejected => Volatile.Read(ref _rejected);

    /// <summary>Associations aborted at the drain deadline.</summary>
    public int Aborted => Volatile.Read(ref _aborted);

    /// <summary>
    /// What to do with a connection at <paramref name="stage"/>: before the drain everything proceeds; while draining an
    /// association that is relaying (or being set up with a node) continues and a new A-ASSOCIATE-RQ is rejected
    /// transiently; after the deadline everything is aborted.
    /// </summary>
    public static DrainAction Decide(DicomConnectionStage stage, bool draining, bool deadlinePassed)
    {
        if (deadlinePassed)
        {
            return DrainAction.Abort;
        }

        if (!draining)
        {
            return DrainAction.Proceed;
        }

        return stage switch
        {
            DicomConnectionStage.AwaitingRequest => DrainAction.Proceed,
            DicomConnectionStage.RequestReceived => DrainAction.RejectTransient,
            _ => DrainAction.Proceed,
        };
    }

    internal void CountRejected(string associationId, string callingAeTitle, string calledAeTitle)
    {
        Interlocked.Increment(ref _rejected);
        Log.RejectedWhileDraining(logger, associationId, callingAeTitle, calledAeTitle);
    }

    internal void CountAborted(string associationId, string callingAeTitle, string calledAeTitle, string destination)
    {
        Interlocked.Increment(ref _aborted);
        Log.AbortedAtDeadline(logger, associationId, callingAeTitle, calledAeTitle, destination, drain.DeadlineAfter);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 311, Level = LogLevel.Information, Message =
            "DICOM association {AssociationId} ({CallingAeTitle} -> {CalledAeTitle}) rejected transiently: the proxy is draining.")]
        public static partial void RejectedWhileDraining(ILogger logger, string associationId, string callingAeTitle, string calledAeTitle);

        [LoggerMessage(EventId = 312, Level = LogLevel.Warning, Message =
            "DICOM association {AssociationId} ({CallingAeTitle} -> {CalledAeTitle}, destination {Destination}) aborted on both sides: still open at the drain deadline ({Deadline}).")]
        public static partial void AbortedAtDeadline(ILogger logger, string associationId, string callingAeTitle, string calledAeTitle, string destination, TimeSpan deadline);
    }
}

/// <summary>Where a DICOM connection is when the drain looks at it.</summary>
public enum DicomConnectionStage
{
    /// <summary>Connected, the A-ASSOCIATE-RQ not (wholly) read yet.</summary>
    AwaitingRequest,

    /// <summary>The A-ASSOCIATE-RQ is read and parsed; nothing sent to a node yet.</summary>
    RequestReceived,

    /// <summary>Failing over among nodes before acceptance.</summary>
    Connecting,

    /// <summary>A-ASSOCIATE-AC sent; relaying until release or abort.</summary>
    Relaying,
}

/// <summary>What the drain asks of a connection.</summary>
public enum DrainAction
{
    Proceed,

    /// <summary>A-ASSOCIATE-RJ rejected-transient, service-provider (presentation), local-limit-exceeded.</summary>
    RejectTransient,

    /// <summary>A-ABORT to the client (and the node, when one is connected).</summary>
    Abort,
}
