using System.Security;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace ImagingProxy.Forwarding;

/// <summary>Writes SOAP 1.2 faults (W3C SOAP 1.2 Part 1 §5.4) with WS-Addressing's fault action, as XDS.b actors expect.</summary>
public static class SoapFault
{
    public const string ContentType = "application/soap+xml; charset=utf-8";

    /// <summary>The fault code: <c>Sender</c> when the request is at fault, <c>Receiver</c> when we or the servers are.</summary>
    public enum Code
    {
        Sender,
        Receiver,
    }

    public static string Build(Code code, string reason)
    {
        var text = SecurityElement.Escape(reason);
        var value = code == Code.Sender ? "env:Sender" : "env:Receiver";
        return "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
            + "<env:Envelope xmlns:env=\"http://www.w3.org/2003/05/soap-envelope\" xmlns:wsa=\"http://www.w3.org/2005/08/addressing\">"
            + "<env:Header><wsa:Action>http://www.w3.org/2005/08/addressing/soap/fault</wsa:Action></env:Header>"
            + $"<env:Body><env:Fault><env:Code><env:Value>{value}</env:Value></env:Code>"
            + $"<env:Reason><env:Text xml:lang=\"en\">{text}</env:Text></env:Reason></env:Fault></env:Body></env:Envelope>";
    }

    public static Task WriteAsync(HttpContext context, int statusCode, Code code, string reason)
    {
        context.Response.StatusCode = statusCode;
        context.Response.ContentType = ContentType;
        return context.Response.WriteAsync(Build(code, reason), Encoding.UTF8, context.RequestAborted);
    }
}
