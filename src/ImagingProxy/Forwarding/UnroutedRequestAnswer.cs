using System.Text;
using ImagingProxy.Configuration;
using ImagingProxy.Hosting;
using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Answers a request on a viewers' or XDS listener that no route matches: 404 with a line of text that says so, logged
/// (event 414, information) and counted (<c>imagingproxy.http.unrouted</c> by listener). Before, ASP.NET Core answered
/// an empty 404 and nothing said why: a viewer set up with a wrong base path (<c>/dicomweb</c> for <c>/dicom-web</c>)
/// looked like a PACS that had lost its studies. A method the matching route does not take still gets routing's 405,
/// and the Admin endpoint's unknown paths keep their plain 404 (a scraper's mistake is not the viewers' traffic).
/// </summary>
internal sealed partial class UnroutedRequestAnswer(HttpProxyMetrics metrics, ILogger<UnroutedRequestAnswer> logger)
{
    /// <summary>Middleware after routing: a request routing found no endpoint for is answered here, every other one goes on.</summary>
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (context.GetEndpoint() is not null)
        {
            return next(context);
        }

        var listener = context.Features.Get<IProxyListenerFeature>()?.Name;
        return string.Equals(listener, EndpointNames.Admin, StringComparison.OrdinalIgnoreCase) ? next(context) : AnswerAsync(context, listener ?? "?");
    }

    private Task AnswerAsync(HttpContext context, string listener)
    {
        metrics.Unrouted(listener);
        Log.NoRoute(logger, context.Request.Method, context.Request.Path.Value ?? "/", listener, context.Connection.RemoteIpAddress?.ToString() ?? "?");
        var body = Encoding.UTF8.GetBytes($"404 Not Found: no route of listener '{listener}' matches this request.\n");
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        context.Response.ContentType = "text/plain; charset=utf-8";
        context.Response.ContentLength = body.Length;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : context.Response.Body.WriteAsync(body, context.RequestAborted).AsTask();
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 414, Level = LogLevel.Information, Message = "Request {Method} {Path} from {Client} on listener {Listener} matches no route: answered 404.")]
        public static partial void NoRoute(ILogger logger, string method, string path, string listener, string client);
    }
}
