using System.Xml.Linq;
using ImagingProxy.Forwarding;

namespace ImagingProxy.Tests.Forwarding;

public sealed class SoapFaultTests
{
    private static readonly XNamespace s_soap11 = "http://schemas.xmlsoap.org/soap/envelope/";

    [Theory]
    [InlineData("application/soap+xml; charset=UTF-8; action=\"urn:ihe:iti:2007:RegistryStoredQuery\"", SoapFault.Version.Soap12)]
    [InlineData("text/xml; charset=utf-8", SoapFault.Version.Soap11)]
    [InlineData(" TEXT/XML ", SoapFault.Version.Soap11)]
    [InlineData("multipart/related; boundary=b; type=\"application/xop+xml\"; start-info=\"text/xml\"", SoapFault.Version.Soap11)]
    [InlineData("multipart/related; boundary=b; type=\"application/xop+xml\"; start-info=\"application/soap+xml\"; action=\"urn:x\"", SoapFault.Version.Soap12)]
    [InlineData("multipart/related; boundary=b; type=\"text/xml\"; start=\"<root>\"", SoapFault.Version.Soap11)]
    [InlineData("multipart/related; boundary=b; type=\"application/xop+xml\"", SoapFault.Version.Soap12)]
    [InlineData("application/xml", SoapFault.Version.Soap12)]
    [InlineData("", SoapFault.Version.Soap12)]
    [InlineData(null, SoapFault.Version.Soap12)]
    public void The_version_is_read_from_the_content_type(string? contentType, SoapFault.Version expected)
        => Assert.Equal(expected, SoapFault.VersionOf(contentType));

    [Theory]
    [InlineData(SoapFault.Code.Sender, "soap:Client")]
    [InlineData(SoapFault.Code.Receiver, "soap:Server")]
    public void A_soap_11_fault_has_the_11_envelope_its_code_and_the_escaped_reason(SoapFault.Code code, string faultCode)
    {
        var envelope = XDocument.Parse(SoapFault.Build(SoapFault.Version.Soap11, code, "bad <action> & more")).Root!;

        Assert.Equal(s_soap11 + "Envelope", envelope.Name);
        var fault = envelope.Element(s_soap11 + "Body")?.Element(s_soap11 + "Fault");
        Assert.NotNull(fault);
        var codeElement = fault.Element("faultcode");
        Assert.NotNull(codeElement);
        Assert.Equal(faultCode, codeElement.Value);
        Assert.Equal(s_soap11, codeElement.GetNamespaceOfPrefix("soap"));
        Assert.Equal("bad <action> & more", fault.Element("faultstring")?.Value);
        Assert.Equal("http://www.w3.org/2005/08/addressing/soap/fault", envelope.Element(s_soap11 + "Header")?.Element(XName.Get("Action", "http://www.w3.org/2005/08/addressing"))?.Value);
    }

    [Theory]
    [InlineData(SoapFault.Version.Soap12, 503, 503)]
    [InlineData(SoapFault.Version.Soap12, 400, 400)]
    [InlineData(SoapFault.Version.Soap11, 503, 500)]
    [InlineData(SoapFault.Version.Soap11, 400, 500)]
    [InlineData(SoapFault.Version.Soap11, 502, 500)]
    [InlineData(SoapFault.Version.Soap11, 405, 405)]
    public void A_soap_11_fault_goes_with_500_except_to_a_request_that_was_not_a_post(SoapFault.Version version, int status, int expected)
        => Assert.Equal(expected, SoapFault.StatusCodeFor(version, status));
}
