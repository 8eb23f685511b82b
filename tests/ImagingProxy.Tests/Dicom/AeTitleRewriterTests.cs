using System.Buffers;
using ImagingProxy.Dicom;

namespace ImagingProxy.Tests.Dicom;

public class AeTitleRewriterTests
{
    [Fact]
    public void Rewrites_the_called_ae_of_a_request_in_place_and_nothing_else()
    {
        var original = DicomCaptures.AssociateRequest;
        var pdu = original.ToArray();

        Assert.True(AeTitleRewriter.TryRewriteCalledAeTitle(pdu, "NODE-A"));

        Assert.Equal("NODE-A          "u8.ToArray(), pdu[10..26]);
        Assert.Equal(original[..10], pdu[..10]);
        Assert.Equal(original[26..], pdu[26..]);
        Assert.True(AssociateRequest.TryParse(AssociateParserTests.Body(pdu), out var rq, out _));
        Assert.Equal("NODE-A", rq.CalledAeTitle);
        Assert.Equal("ECHOSCU", rq.CallingAeTitle);
    }

    [Fact]
    public void Rewrites_the_calling_ae()
    {
        var pdu = DicomCaptures.AssociateRequest;

        Assert.True(AeTitleRewriter.TryRewriteCallingAeTitle(pdu, "PROXY"));

        Assert.Equal("PROXY           "u8.ToArray(), pdu[26..42]);
    }

    [Fact]
    public void Restores_the_client_called_ae_while_copying_an_accept_out_of_a_pipe_buffer()
    {
        var accept = DicomCaptures.AssociateAccept;
        "NODE-A          "u8.CopyTo(accept.AsSpan(10));
        var destination = new ArrayBufferWriter<byte>();

        Assert.True(AeTitleRewriter.TryCopyWithCalledAeTitle(TestSequence.Split(accept, 12, 20), "STORESCP", destination));

        Assert.Equal(DicomCaptures.AssociateAccept, destination.WrittenSpan.ToArray());
    }

    [Theory]
    [InlineData("")]
    [InlineData("                ")]
    [InlineData("SEVENTEEN_CHARS_X")]
    [InlineData("BACK\\SLASH")]
    [InlineData("TAB\tTAB")]
    [InlineData("ÜMLAUT")]
    public void Refuses_an_invalid_ae_title_without_writing(string aeTitle)
    {
        var pdu = DicomCaptures.AssociateRequest;

        Assert.False(AeTitleRewriter.TryRewriteCalledAeTitle(pdu, aeTitle));
        Assert.Equal(DicomCaptures.AssociateRequest, pdu);
    }

    [Fact]
    public void Refuses_pdus_that_are_not_associate_requests_or_accepts()
    {
        var pdata = DicomCaptures.EchoRequestPData;

        Assert.False(AeTitleRewriter.TryRewriteCalledAeTitle(pdata, "NODE"));
        Assert.False(AeTitleRewriter.TryRewriteCalledAeTitle(DicomCaptures.AssociateRequest.AsSpan(0, 30), "NODE"));
        Assert.Equal(DicomCaptures.EchoRequestPData, pdata);
    }
}
