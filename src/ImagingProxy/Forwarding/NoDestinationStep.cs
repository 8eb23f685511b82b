using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Answers 503 with a clear text when the route's cluster has no healthy destination, instead of forwarding to a
/// dead server (the HealthyOrPanic behaviour is wrong for clinical traffic).
/// </summary>
internal sealed partial class NoDestinationStep(ILogger<NoDestinationStep> logger)
{
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var feature = context.GetReverseProxyFeature();
        return feature.AvailableDestinations.Count > 0 ? next(context) : RefuseAsync(context, feature.Cluster.Config.ClusterId);
    }

    private async Task RefuseAsync(HttpContext context, string cluster)
    {
        Log.NoDestination(logger, cluster, LoggedRequest.Path(context.Request));
        context.Response.StatusCode = StatusCodes.Status503ServiceUnavailable;
        context.Response.Headers.RetryAfter = "10";
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync($"503 Service Unavailable: no healthy server in cluster '{cluster}'.\n", context.RequestAborted);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 410, Level = LogLevel.Warning, Message = "Request {Path} refused with 503: no healthy destination in cluster '{Cluster}'.")]
        public static partial void NoDestination(ILogger logger, string cluster, string path);
    }
}
