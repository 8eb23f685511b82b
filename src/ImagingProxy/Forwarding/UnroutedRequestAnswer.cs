using System.Text;
using ImagingProxy.Configuration;
using ImagingProxy.Hosting;
using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Answers a request on a viewers' or XDS listener that no route matches: 404 with a line of text that says so, logged
/// (event 414, information) and counted (<c>imagingproxy.http.unrouted</c> by listener and status code). Before,
/// ASP.NET Core answered an empty 404 and nothing said why: a viewer set up with a wrong base path (<c>/dicomweb</c> for
/// <c>/dicom-web</c>) looked like a PACS that had lost its studies. A request whose path only routes that take other
/// methods match gets routing's own 405 (with <c>Allow</c>), logged (event 415) and counted the same way. The Admin
/// endpoint's unknown paths keep their plain 404 and 405 (a scraper's mistake is not the viewers' traffic).
/// </summary>
internal sealed partial class UnroutedRequestAnswer(HttpProxyMetrics metrics, ILogger<UnroutedRequestAnswer> logger)
{
    /// <summary>The display name ASP.NET Core's routing gives the endpoint that answers 405 (HttpMethodMatcherPolicy).</summary>
    internal const string MethodRejectionEndpointName = "405 HTTP Method Not Supported";

    /// <summary>Middleware after routing: a request routing found no endpoint for is answered here, every other one goes on.</summary>
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var endpoint = context.GetEndpoint();
        if (endpoint is not null && !string.Equals(endpoint.DisplayName, MethodRejectionEndpointName, StringComparison.Ordinal))
        {
            return next(context);
        }

        var listener = context.Features.Get<IProxyListenerFeature>()?.Name;
        if (string.Equals(listener, EndpointNames.Admin, StringComparison.OrdinalIgnoreCase))
        {
            return next(context);
        }

        listener ??= "?";
        var client = context.Connection.RemoteIpAddress?.ToString() ?? "?";
        if (endpoint is not null)
        {
            metrics.Unrouted(listener, StatusCodes.Status405MethodNotAllowed);
            Log.MethodNotRouted(logger, context.Request.Method, LoggedRequest.Path(context.Request), client, listener);
            return next(context);
        }

        metrics.Unrouted(listener, StatusCodes.Status404NotFound);
        Log.NoRoute(logger, context.Request.Method, LoggedRequest.Path(context.Request), client, listener);
        var body = Encoding.UTF8.GetBytes($"404 Not Found: no route of listener '{listener}' matches this request.\n");
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        context.Response.ContentType = "text/plain; charset=utf-8";
        context.Response.ContentLength = body.Length;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : context.Response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 414, Level = LogLevel.Information, Message = "Request {Method} {Path} from {Client} on listener {Listener} matches no route: answered 404.")]
        public static partial void NoRoute(ILogger logger, string method, string path, string client, string listener);

        [LoggerMessage(EventId = 415, Level = LogLevel.Information, Message = "Request {Method} {Path} from {Client} on listener {Listener}: no route for this path takes {Method}; answered 405.")]
        public static partial void MethodNotRouted(ILogger logger, string method, string path, string client, string listener);
    }
}
