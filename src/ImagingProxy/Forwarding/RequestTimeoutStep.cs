using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Timeouts;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Makes a route's <c>Timeout</c> answer 504 Gateway Timeout: YARP reports the cancelled upstream call as a
/// client cancellation (400), which misleads viewers and operators.
/// </summary>
internal static class RequestTimeoutStep
{
    public static async Task InvokeAsync(HttpContext context, Func<Task> next)
    {
        await next();
        var timeout = context.Features.Get<IHttpRequestTimeoutFeature>();
        if (timeout is not null && timeout.RequestTimeoutToken.IsCancellationRequested && !context.Response.HasStarted)
        {
            context.Response.StatusCode = StatusCodes.Status504GatewayTimeout;
        }
    }
}
