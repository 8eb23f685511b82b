using System.Security;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Writes the SOAP faults of the XDS endpoint in the client's SOAP version, with WS-Addressing's fault action: SOAP 1.2
/// (W3C SOAP 1.2 Part 1 §5.4), which XDS.b requires, and SOAP 1.1 for older stacks that send <c>text/xml</c>, whose
/// parsers do not read a SOAP 1.2 envelope as a fault.
/// </summary>
public static class SoapFault
{
    public const string ContentType = "application/soap+xml; charset=utf-8";

    /// <summary>The media type of a SOAP 1.1 message (SOAP 1.1 §6.1.1).</summary>
    public const string Soap11ContentType = "text/xml; charset=utf-8";

    /// <summary>The fault code: <c>Sender</c> when the request is at fault, <c>Receiver</c> when we or the servers are.</summary>
    public enum Code
    {
        Sender,
        Receiver,
    }

    public enum Version
    {
        Soap12,
        Soap11,
    }

    /// <summary>
    /// The SOAP version of a request, from its Content-Type: <c>text/xml</c> is SOAP 1.1, and so is an MTOM or SwA
    /// <c>multipart/related</c> body whose root part is (<c>start-info</c>, else <c>type</c>, is <c>text/xml</c>); anything
    /// else, no Content-Type included, is taken as SOAP 1.2.
    /// </summary>
    public static Version VersionOf(string? contentType)
    {
        var mediaType = MediaType(contentType);
        if (mediaType.Equals("text/xml", StringComparison.OrdinalIgnoreCase))
        {
            return Version.Soap11;
        }

        if (mediaType.Equals("multipart/related", StringComparison.OrdinalIgnoreCase))
        {
            var root = XdsAction.FindParameter(contentType, "start-info") ?? XdsAction.FindParameter(contentType, "type");
            return MediaType(root).Equals("text/xml", StringComparison.OrdinalIgnoreCase) ? Version.Soap11 : Version.Soap12;
        }

        return Version.Soap12;
    }

    public static string Build(Version version, Code code, string reason)
    {
        // A reason may quote the client (its SOAP action): control characters written out, as XML 1.0 allows none of them.
        var text = SecurityElement.Escape(Telemetry.LogText.Printable(reason));
        if (version == Version.Soap11)
        {
            // SOAP 1.1 §4.4.1: Client and Server are the codes of Sender and Receiver.
            var faultCode = code == Code.Sender ? "soap:Client" : "soap:Server";
            return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                + "<soap:Envelope xmlns:soap=\"http://schemas.xmlsoap.org/soap/envelope/\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">"
                + "<soap:Header><wsa:Action>http://www.w3.org/2005/08/addressing/soap/fault</wsa:Action></soap:Header>"
                + $"<soap:Body><soap:Fault><faultcode>{faultCode}</faultcode><faultstring xml:lang=\"en\">{text}</faultstring></soap:Fault></soap:Body></soap:Envelope>";
        }

        var value = code == Code.Sender ? "env:Sender" : "env:Receiver";
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
            + "<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">"
            + "<env:Header><wsa:Action>http://www.w3.org/2005/08/addressing/soap/fault</wsa:Action></env:Header>"
            + $"<env:Body><env:Fault><env:Code><env:Value>{value}</env:Value></env:Code>"
            + $"<env:Reason><env:Text xml:lang=\"en\">{text}</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>";
    }

    /// <summary>
    /// Answers with a fault in the request's SOAP version. A SOAP 1.2 fault goes with <paramref name="statusCode"/>; a
    /// SOAP 1.1 fault with 500, as the SOAP 1.1 HTTP binding (§6.2) and WS-I Basic Profile (R1126) require of any fault,
    /// except a 405 to a request that was not a POST (no SOAP message was processed). Other headers (Retry-After) stay.
    /// </summary>
    public static Task WriteAsync(HttpContext context, int statusCode, Code code, string reason)
    {
        var version = VersionOf(context.Request.ContentType);
        context.Response.StatusCode = StatusCodeFor(version, statusCode);
        context.Response.ContentType = version == Version.Soap11 ? Soap11ContentType : ContentType;
        return context.Response.WriteAsync(Build(version, code, reason), Encoding.UTF8, context.RequestAborted);
    }

    /// <summary>The status a fault of <paramref name="version"/> goes with, for <paramref name="statusCode"/> (see <see cref="WriteAsync"/>).</summary>
    internal static int StatusCodeFor(Version version, int statusCode)
        => version == Version.Soap11 && statusCode != StatusCodes.Status405MethodNotAllowed ? StatusCodes.Status500InternalServerError : statusCode;

    private static ReadOnlySpan<char> MediaType(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return [];
        }

        var semicolon = contentType.IndexOf(';', StringComparison.Ordinal);
        return (semicolon >= 0 ? contentType.AsSpan(0, semicolon) : contentType.AsSpan()).Trim();
    }
}
