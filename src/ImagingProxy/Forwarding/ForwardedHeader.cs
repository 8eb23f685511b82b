using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Proxied HTTP requests carry a <c>Forwarded</c> header (RFC 7239) with the <c>proto</c> and <c>host</c> of the client's
/// request, beside YARP's <c>X-Forwarded-*</c>. Orthanc's DICOMweb plugin builds the URLs it returns (QIDO-RS
/// <c>RetrieveURL</c>, WADO-RS metadata <c>BulkDataURI</c>) from <c>Forwarded</c> and ignores <c>X-Forwarded-*</c>: without
/// it, a viewer was handed URLs with the PACS's own address and scheme, which it cannot reach or which go around the proxy.
/// </summary>
/// <remarks>
/// <para>
/// The host goes unquoted even with a port (<c>host=pacs.example:8443</c>), where RFC 7239 wants it quoted: Orthanc's
/// DICOMweb plugin 1.7 (Debian 12) copies the quotes into its URLs (<c>https://"pacs.example:8443"/...</c>, checked in
/// session 15), and it reads the unquoted form in every version. Kestrel has checked the <c>Host</c> header, so the value
/// holds no separator of the header's syntax.
/// </para>
/// <para>
/// Only on routes that keep YARP's default forwarding headers: a route with its own <c>X-Forwarded</c> or
/// <c>Forwarded</c> transform (or with them <c>Off</c>) decides for itself. No <c>for</c> element: the client's address
/// already goes in <c>X-Forwarded-For</c>. A <c>Forwarded</c> header the client sent is replaced, as YARP replaces
/// <c>X-Forwarded-*</c>.
/// </para>
/// </remarks>
public static class ForwardedHeader
{
    public const string HeaderName = "Forwarded";

    public static void Apply(TransformBuilderContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        if (context.UseDefaultForwarders == false)
        {
            return;
        }

        // YARP's default X-Forwarded-* transforms also remove a Forwarded header: they are added here as YARP would, but
        // keeping it (the last argument), and the defaults are turned off.
        context.UseDefaultForwarders = false;
        context.AddXForwarded(ForwardedTransformActions.Set, false);
        context.AddRequestTransform(static transform =>
        {
            var request = transform.HttpContext.Request;
            var headers = transform.ProxyRequest.Headers;
            headers.Remove(HeaderName);
            if (request.Host.HasValue)
            {
                headers.TryAddWithoutValidation(HeaderName, $"proto={request.Scheme};host={request.Host.Value}");
            }
            else
            {
                headers.TryAddWithoutValidation(HeaderName, $"proto={request.Scheme}");
            }

            return ValueTask.CompletedTask;
        });
    }
}
