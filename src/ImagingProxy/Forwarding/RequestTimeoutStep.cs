using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;
using Microsoft.Extensions.Logging;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Forwarding;

/// <summary>
/// A route's <c>Timeout</c> (ASP.NET Core's request timeout: a deadline for the whole exchange, body transfers
/// included) answers 504 Gateway Timeout when no response has started: YARP reports the cancelled upstream call as a
/// client cancellation (400), which misleads viewers and operators. A response already under way is cut there; either
/// way the request is logged (event 411, warning) and counted with <c>error="RequestTimeout"</c> (HttpProxyMetrics).
/// </summary>
internal sealed partial class RequestTimeoutStep(ILogger<RequestTimeoutStep> logger)
{
    /// <summary>A request without a route <c>Timeout</c> (no timeout feature) passes straight through, with no async level of its own.</summary>
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
        => context.Features.Get<IHttpRequestTimeoutFeature>() is null ? next(context) : ForwardAsync(context, next);

    private async Task ForwardAsync(HttpContext context, RequestDelegate next)
    {
        await next(context);
        if (!TimedOut(context))
        {
            return;
        }

        var started = context.Response.HasStarted;
        var feature = context.Features.Get<IReverseProxyFeature>();
        if (!started)
        {
            // The XDS route has no Timeout (XdsRouteProvider): its timeouts are the forwarder's, answered with a SOAP fault.
            context.Response.StatusCode = StatusCodes.Status504GatewayTimeout;
        }

        Log.TimedOut(
            logger,
            context.Request.Method,
            LoggedRequest.Path(context.Request),
            feature?.Route.Config.RouteId ?? "?",
            feature?.ProxiedDestination?.DestinationId ?? "none",
            started ? "the response was cut short" : "answered 504");
    }

    /// <summary>
    /// True when the request's route <c>Timeout</c> fired and ended the exchange (YARP recorded the cancellation, the
    /// retry step dropped an answer it had kept back for a retry: <see cref="RetryableStatus.TimedOut"/>, or the request
    /// was still waiting for a place: <see cref="TimedOutInQueue"/>): an exchange that finished just before the deadline
    /// is not a timeout.
    /// </summary>
    public static bool TimedOut(HttpContext context)
        => context.Features.Get<IHttpRequestTimeoutFeature>() is { } timeout && timeout.RequestTimeoutToken.IsCancellationRequested
            && (context.GetForwarderErrorFeature() is not null || context.Features.Get<RetryableStatus>()?.TimedOut == true
                || context.Items.ContainsKey(TimedOutInQueue));

    /// <summary>
    /// Set (as an <see cref="HttpContext.Items"/> key) by the limit step when the route's <c>Timeout</c> ended the request's
    /// wait for a place (<c>QueueTimeout</c>): no server was asked, and it ends as any other route timeout (504, event 411).
    /// </summary>
    public static readonly object TimedOutInQueue = new();

    private static partial class Log
    {
        [LoggerMessage(EventId = 411, Level = LogLevel.Warning, Message = "Request {Method} {Path} (route {Route}, destination {Destination}) reached its route Timeout: {Outcome}.")]
        public static partial void TimedOut(ILogger logger, string method, string path, string route, string destination, string outcome);
    }
}
