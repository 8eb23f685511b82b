using Microsoft.AspNetCore.Http;

namespace ImagingProxy.Forwarding;

/// <summary>Request fields as log lines show them.</summary>
internal static class LoggedRequest
{
    /// <summary>
    /// The request path as it travels (percent-encoded, <see cref="PathString.ToUriComponent"/>), not decoded: a client's
    /// <c>%0D%0A</c> or escape sequence stays text in the log instead of starting a forged line or colouring a terminal.
    /// </summary>
    public static string Path(HttpRequest request) => request.Path.HasValue ? request.Path.ToUriComponent() : "/";
}
