using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ImagingProxy.Dicom;

/// <summary>
/// The DICOM side of the SIGTERM drain (issue 6). The host's <see cref="HostOptions.ShutdownTimeout"/> comes from
/// <c>ImagingProxy:DrainTimeout</c>; Kestrel stops accepting when stopping begins, asks every connection to close
/// (<c>IConnectionLifetimeNotificationFeature.ConnectionClosedRequested</c>) and aborts the transports when the
/// shutdown timeout expires. An association is never ended by the close request: one already relaying runs until it
/// is released, an A-ASSOCIATE-RQ read after the drain began is rejected transiently, and shortly before Kestrel's
/// abort (<see cref="Deadline"/>) what remains gets A-ABORT on both sides while both transports are still open.
/// </summary>
public sealed partial class DicomDrain : IDisposable
{
    /// <summary>The deadline fires this much before the shutdown timeout (at most), so the A-ABORTs are still sent.</summary>
    public static readonly TimeSpan MaxDeadlineMargin = TimeSpan.FromSeconds(2);

    private readonly IHostApplicationLifetime _lifetime;
    private readonly TimeSpan _shutdownTimeout;
    private readonly TimeProvider _time;
    private readonly ILogger<DicomDrain> _logger;
    private readonly CancellationTokenSource _deadline;
    private readonly CancellationTokenRegistration _stopping;
    private int _rejected;
    private int _aborted;

    public DicomDrain(IHostApplicationLifetime lifetime, IOptions<HostOptions> hostOptions, TimeProvider time, ILogger<DicomDrain> logger)
    {
        ArgumentNullException.ThrowIfNull(lifetime);
        ArgumentNullException.ThrowIfNull(hostOptions);
        _lifetime = lifetime;
        _shutdownTimeout = hostOptions.Value.ShutdownTimeout;
        _time = time;
        _logger = logger;
        _deadline = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _stopping = lifetime.ApplicationStopping.Register(Begin);
    }

    /// <summary>True once the host is stopping: new associations are refused.</summary>
    public bool IsDraining => _lifetime.ApplicationStopping.IsCancellationRequested;

    /// <summary>Cancelled at <see cref="DeadlineAfter"/> once draining: the associations still open are aborted.</summary>
    public CancellationToken Deadline => _deadline.Token;

    /// <summary>How long after stopping began the remaining associations are aborted.</summary>
    public TimeSpan DeadlineAfter => DeadlineFor(_shutdownTimeout);

    /// <summary>Associations refused because they arrived during the drain.</summary>
    public int Rejected => Volatile.Read(ref _rejected);

    /// <summary>Associations aborted at the drain deadline.</summary>
    public int Aborted => Volatile.Read(ref _aborted);

    /// <summary>The deadline relative to the start of the drain: the shutdown timeout less a margin (10 %, at most 2 s).</summary>
    public static TimeSpan DeadlineFor(TimeSpan shutdownTimeout)
    {
        if (shutdownTimeout == Timeout.InfiniteTimeSpan)
        {
            return Timeout.InfiniteTimeSpan;
        }

        if (shutdownTimeout <= TimeSpan.Zero)
        {
            return TimeSpan.Zero;
        }

        var margin = TimeSpan.FromTicks(Math.Min(MaxDeadlineMargin.Ticks, shutdownTimeout.Ticks / 10));
        return shutdownTimeout - margin;
    }

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
        Log.RejectedWhileDraining(_logger, associationId, callingAeTitle, calledAeTitle);
    }

    internal void CountAborted(string associationId, string callingAeTitle, string calledAeTitle, string destination)
    {
        Interlocked.Increment(ref _aborted);
        Log.AbortedAtDeadline(_logger, associationId, callingAeTitle, calledAeTitle, destination, DeadlineAfter);
    }

    public void Dispose()
    {
        _stopping.Dispose();
        _deadline.Dispose();
    }

    private void Begin()
    {
        var after = DeadlineAfter;
        Log.DrainStarted(_logger, after);
        if (after != Timeout.InfiniteTimeSpan)
        {
            try
            {
                _deadline.CancelAfter(after);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 310, Level = LogLevel.Information, Message =
            "DICOM drain started: associations being relayed continue until released, new ones are rejected transiently; what remains is aborted after {Deadline}.")]
        public static partial void DrainStarted(ILogger logger, TimeSpan deadline);

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
