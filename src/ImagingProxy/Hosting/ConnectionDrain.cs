using ImagingProxy.Telemetry;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace ImagingProxy.Hosting;

/// <summary>
/// The SIGTERM drain of the raw DICOM and MLLP connections. The host's <see cref="HostOptions.ShutdownTimeout"/> comes
/// from <c>ImagingProxy:DrainTimeout</c>; Kestrel stops accepting when stopping begins, asks every connection to close
/// (<c>IConnectionLifetimeNotificationFeature.ConnectionClosedRequested</c>) and aborts the transports when the shutdown
/// timeout expires. Each protocol finishes what it is doing on the close request (a DICOM association until it is
/// released, an HL7 message until its ACK is relayed); shortly before Kestrel's abort, <see cref="Deadline"/> fires so
/// that what remains is ended the protocol's way (A-ABORT; no ACK) while the transports are still open.
/// </summary>
public sealed partial class ConnectionDrain : IDisposable
{
    /// <summary>The deadline fires this much before the shutdown timeout (at most), so the last protocol answers are still sent.</summary>
    public static readonly TimeSpan MaxDeadlineMargin = TimeSpan.FromSeconds(2);

    private readonly IHostApplicationLifetime _lifetime;
    private readonly TimeSpan _shutdownTimeout;
    private readonly ILogger<ConnectionDrain> _logger;
    private readonly CancellationTokenSource _deadline;
    private readonly CancellationTokenSource _requestWaitOver;
    private readonly CancellationTokenRegistration _stopping;

    private readonly HttpProxyMetrics? _http;

    public ConnectionDrain(IHostApplicationLifetime lifetime, IOptions<HostOptions> hostOptions, TimeProvider time, ILogger<ConnectionDrain> logger, HttpProxyMetrics? http = null)
    {
        _http = http;
        ArgumentNullException.ThrowIfNull(lifetime);
        ArgumentNullException.ThrowIfNull(hostOptions);
        _lifetime = lifetime;
        _shutdownTimeout = hostOptions.Value.ShutdownTimeout;
        _logger = logger;
        _deadline = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _requestWaitOver = new CancellationTokenSource(Timeout.InfiniteTimeSpan, time);
        _stopping = lifetime.ApplicationStopping.Register(Begin);
    }

    /// <summary>True once the host is stopping.</summary>
    public bool IsDraining => _lifetime.ApplicationStopping.IsCancellationRequested;

    /// <summary>How long after the drain began a connection that has sent nothing yet may still start its exchange (DICOM: its A-ASSOCIATE-RQ).</summary>
    public static readonly TimeSpan RequestWait = TimeSpan.FromSeconds(1);

    /// <summary>Cancelled <see cref="RequestWait"/> after the drain began, or at the deadline if that is sooner: one timer for every connection.</summary>
    public CancellationToken RequestWaitOver => _requestWaitOver.Token;

    /// <summary>Cancelled at <see cref="DeadlineAfter"/> once draining: the connections still busy are ended.</summary>
    public CancellationToken Deadline => _deadline.Token;

    /// <summary>How long after stopping began the remaining connections are ended.</summary>
    public TimeSpan DeadlineAfter => DeadlineFor(_shutdownTimeout);

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

    public void Dispose()
    {
        _stopping.Dispose();
        _deadline.Dispose();
        _requestWaitOver.Dispose();
    }

    private void Begin()
    {
        var after = DeadlineAfter;
        Log.DrainStarted(_logger, after);
        try
        {
            _requestWaitOver.CancelAfter(after != Timeout.InfiniteTimeSpan && after < RequestWait ? after : RequestWait);
        }
        catch (ObjectDisposedException)
        {
        }

        if (after != Timeout.InfiniteTimeSpan)
        {
            try
            {
                _deadline.Token.UnsafeRegister(static s => ((ConnectionDrain)s!).DeadlinePassed(), this);
                _deadline.CancelAfter(after);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }

    /// <summary>
    /// HTTP requests still under way at the deadline are cut when Kestrel aborts its connections, at the shutdown timeout
    /// just after it (a download or upload then fails at the client): said once, as a warning, since the process exits
    /// before anything scrapes a metric of it.
    /// </summary>
    private void DeadlinePassed()
    {
        if (_http?.InFlight is > 0 and var requests)
        {
            Log.HttpRequestsCut(_logger, requests, _shutdownTimeout);
        }
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 310, Level = LogLevel.Information, Message =
            "Drain started: HTTP requests under way continue and new connections are refused; DICOM associations being relayed continue until released and new ones are rejected transiently; MLLP connections finish the message in flight and close; what remains is ended after {Deadline}.")]
        public static partial void DrainStarted(ILogger logger, TimeSpan deadline);

        [LoggerMessage(EventId = 314, Level = LogLevel.Warning, Message =
            "Drain deadline: {Requests} proxied HTTP request(s) still under way are cut when the shutdown timeout ({ShutdownTimeout}) ends; their clients see the transfer fail.")]
        public static partial void HttpRequestsCut(ILogger logger, int requests, TimeSpan shutdownTimeout);
    }
}
