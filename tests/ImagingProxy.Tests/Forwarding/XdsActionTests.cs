using ImagingProxy.Forwarding;

namespace ImagingProxy.Tests.Forwarding;

public class XdsActionTests
{
    [Theory]
    [InlineData("application/soap+xml; charset=UTF-8; action=\"urn:ihe:iti:2007:RegistryStoredQuery\"", XdsTransaction.RegistryStoredQuery)]
    [InlineData("application/soap+xml;action=urn:ihe:iti:2007:RegisterDocumentSet-b;charset=UTF-8", XdsTransaction.RegisterDocumentSet)]
    [InlineData("multipart/related; boundary=MIMEBoundary_1; type=\"application/xop+xml\"; start=\"<0.a@apache.org>\"; start-info=\"application/soap+xml\"; action=\"urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b\"", XdsTransaction.ProvideAndRegisterDocumentSet)]
    [InlineData("multipart/related; type=\"application/xop+xml\"; ACTION=\"URN:IHE:ITI:2007:RETRIEVEDOCUMENTSET\"", XdsTransaction.RetrieveDocumentSet)]
    [InlineData("application/soap+xml; charset=UTF-8", XdsTransaction.Missing)]
    [InlineData("application/soap+xml; action=\"urn:ihe:iti:2007:CrossGatewayQuery\"", XdsTransaction.Unknown)]
    [InlineData("application/soap+xml; start-info=\"x; action=urn:ihe:iti:2007:RegistryStoredQuery\"", XdsTransaction.RegistryStoredQuery)]
    [InlineData("multipart/related; type=\"application/xop+xml\"; start=\"<http://tempuri.org/0>\"; boundary=\"uuid:1+id=1\"; start-info=\"application/soap+xml; action=\\\"urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b\\\"\"", XdsTransaction.ProvideAndRegisterDocumentSet)]
    [InlineData("multipart/related; start-info=\"application/soap+xml; action=\\\"urn:ihe:iti:2007:RegistryStoredQuery\\\"\"; action=\"urn:ihe:iti:2007:RetrieveDocumentSet\"", XdsTransaction.RetrieveDocumentSet)]
    [InlineData("multipart/related; type=\"application/xop+xml\"; start-info=\"application/soap+xml\"", XdsTransaction.Missing)]
    [InlineData("application/soap+xml; action=\"urn:ihe:iti:2007:RegistryStoredQuery\"; action=\"urn:ihe:iti:2007:RetrieveDocumentSet\"", XdsTransaction.Conflicting)]
    [InlineData("application/soap+xml; action=\"urn:ihe:iti:2007:RegistryStoredQuery\"; action=urn:ihe:iti:2007:registrystoredquery", XdsTransaction.RegistryStoredQuery)]
    [InlineData("application/soap+xml; action=urn:ihe:iti:2007:RegistryStoredQuery; action=urn:ihe:iti:2007:RegistryStoredQuery; action=urn:ihe:iti:2007:RetrieveDocumentSet", XdsTransaction.Conflicting)]
    public void Classifies_the_action_parameter_of_the_content_type(string contentType, XdsTransaction expected)
        => Assert.Equal(expected, XdsAction.Classify(contentType, null, out _));

    [Theory]
    [InlineData("urn:ihe:iti:2007:RegistryStoredQuery", XdsTransaction.RegistryStoredQuery)]
    [InlineData("urn:ihe:iti:2007:RetrieveDocumentSet", XdsTransaction.Conflicting)]
    public void Many_action_parameters_are_compared_with_the_first(string last, XdsTransaction expected)
    {
        // As many parameters as a 32 KB header holds, quoted or not, in any case: each is compared with the first in one
        // pass (the check used to re-scan the header once per parameter, 54 ms of CPU per request; the cost itself is
        // not asserted, tests have no timing asserts).
        var contentType = "application/soap+xml" + string.Concat(Enumerable.Repeat("; action=\"urn:ihe:iti:2007:RegistryStoredQuery\" ", 600))
            + string.Concat(Enumerable.Repeat("; ACTION= URN:IHE:ITI:2007:REGISTRYSTOREDQUERY", 600)) + "; action=" + last;

        Assert.Equal(expected, XdsAction.Classify(contentType, null, out var action));
        Assert.Equal(expected == XdsTransaction.Conflicting ? $"urn:ihe:iti:2007:RegistryStoredQuery' and '{last}" : "urn:ihe:iti:2007:RegistryStoredQuery", action);
    }

    [Fact]
    public void Matches_the_whole_urn_not_a_substring()
        => Assert.Equal(XdsTransaction.Unknown, XdsAction.Classify("application/soap+xml; action=\"RegisterDocumentSet-b\"", null, out _));

    [Fact]
    public void Falls_back_to_the_soapaction_header()
    {
        Assert.Equal(XdsTransaction.RetrieveDocumentSet, XdsAction.Classify("text/xml", "\"urn:ihe:iti:2007:RetrieveDocumentSet\"", out var action));
        Assert.Equal("urn:ihe:iti:2007:RetrieveDocumentSet", action);
    }

    [Fact]
    public void Fault_text_is_escaped_xml()
    {
        var fault = SoapFault.Build(SoapFault.Version.Soap12, SoapFault.Code.Sender, "bad <action> & more");
        Assert.Contains("bad &lt;action&gt; &amp; more", fault, StringComparison.Ordinal);
        Assert.Contains("<env:Value>env:Sender</env:Value>", fault, StringComparison.Ordinal);
        _ = System.Xml.Linq.XDocument.Parse(fault);
    }
}
