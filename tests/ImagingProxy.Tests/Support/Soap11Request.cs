using System.Net.Http.Headers;
using System.Text;

namespace ImagingProxy.Tests.Support;

/// <summary>Sends a SOAP 1.1 request as older stacks do: <c>text/xml</c>, the action in the <c>SOAPAction</c> header, an empty body.</summary>
internal static class Soap11Request
{
    public static async Task<HttpResponseMessage> PostAsync(HttpClient client, string path, string action)
    {
        using var content = new StringContent("""<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"><soap:Body/></soap:Envelope>""", Encoding.UTF8);
        content.Headers.ContentType = MediaTypeHeaderValue.Parse("text/xml; charset=utf-8");
        using var request = new HttpRequestMessage(HttpMethod.Post, path) { Content = content };
        request.Headers.TryAddWithoutValidation("SOAPAction", $"\"{action}\"");
        return await client.SendAsync(request);
    }
}
