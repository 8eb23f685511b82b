using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Answers 413 before anything is forwarded when a request declares (<c>Content-Length</c>) a body over its route's
/// <c>MaxRequestBodySize</c> (or <c>Kestrel:Limits:MaxRequestBodySize</c>). Left to Kestrel, the limit only bites
/// when the body is read, after YARP has sent the server the request's headers: the server saw a STOW-RS begin and then
/// break off. A chunked body (no length) is still cut at the limit while it streams.
/// </summary>
internal sealed partial class RequestBodyLimitStep(ILogger<RequestBodyLimitStep> logger)
{
    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (context.Request.ContentLength is { } length && Limit(context) is { } limit && length > limit)
        {
            return RefuseAsync(context, length, limit);
        }

        return next(context);
    }

    /// <summary>
    /// The body limit the request will have when YARP forwards it: the route's <c>MaxRequestBodySize</c> (-1: none),
    /// else the server's. YARP applies the route's own just before forwarding, after this pipeline's steps.
    /// </summary>
    private static long? Limit(HttpContext context)
        => context.GetReverseProxyFeature().Route.Config.MaxRequestBodySize is { } routeLimit
            ? routeLimit < 0 ? null : routeLimit
            : context.Features.Get<IHttpMaxRequestBodySizeFeature>()?.MaxRequestBodySize;

    private async Task RefuseAsync(HttpContext context, long length, long limit)
    {
        var route = context.GetReverseProxyFeature().Route.Config.RouteId;
        Log.TooLarge(logger, context.Request.Method, LoggedRequest.Path(context.Request), route, length, limit);

        // The body is not read: an HTTP/1.x connection closes after the answer rather than read what the client still
        // sends (HTTP/2 and HTTP/3 have no Connection header, RFC 9113 §8.2.2: Kestrel ends the stream instead, and would
        // drop the header with a warning). (The XDS route has no limit, XdsRouteProvider: MTOM bodies are large.)
        if (HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol))
        {
            context.Response.Headers.Connection = "close";
        }

        context.Response.StatusCode = StatusCodes.Status413PayloadTooLarge;
        context.Response.ContentType = "text/plain; charset=utf-8";
        await context.Response.WriteAsync($"413 Payload Too Large: the request body ({length} bytes) is over the limit of {limit} bytes for route '{route}'.\n", context.RequestAborted);
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 412, Level = LogLevel.Warning, Message = "Request {Method} {Path} (route {Route}) refused with 413 before forwarding: Content-Length {Length} is over the limit of {Limit} bytes.")]
        public static partial void TooLarge(ILogger logger, string method, string path, string route, long length, long limit);
    }
}
