using System.Buffers;
using ImagingProxy.Dicom;

namespace ImagingProxy.Tests.Dicom;

public class PduWriterTests
{
    [Fact]
    public void Writes_the_dcmtk_associate_request_byte_for_byte_apart_from_its_reserved_ff()
    {
        var writer = new ArrayBufferWriter<byte>();

        var written = PduWriter.WriteAssociateRequest(
            writer, "STORESCP", "ECHOSCU", 1, DicomUids.Verification, DicomUids.ImplicitVrLittleEndian,
            16384, "1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367");

        // dcmtk sends 0xFF in a reserved byte of the presentation context item; we send 0x00 (PS3.8 §9.3.2.2).
        var expected = DicomCaptures.AssociateRequest;
        expected[DicomCaptures.RequestReservedFfOffset] = 0x00;
        Assert.Equal(expected.Length, written);
        Assert.Equal(expected, writer.WrittenSpan.ToArray());
    }

    [Fact]
    public void Writes_our_own_associate_request_that_parses_back()
    {
        var writer = new ArrayBufferWriter<byte>();
        PduWriter.WriteAssociateRequest(
            writer, "PACS", "IMAGINGPROXY", 1, DicomUids.Verification, DicomUids.ImplicitVrLittleEndian,
            DicomDefaults.MaxPduLength, DicomUids.ImplementationClassUid, DicomUids.ImplementationVersionName);
        var buffer = new ReadOnlySequence<byte>(writer.WrittenMemory);

        Assert.Equal(PduReadResult.Complete, PduReader.TryReadPdu(ref buffer, 65536, out var header, out var body));
        Assert.Equal(PduType.AssociateRequest, header.Type);
        Assert.True(AssociateRequest.TryParse(body, out var rq, out _));
        Assert.Equal("PACS", rq.CalledAeTitle);
        Assert.Equal("IMAGINGPROXY", rq.CallingAeTitle);
        Assert.Equal(DicomUids.ImplementationClassUid, rq.UserInformation.ImplementationClassUid);
        Assert.Equal("IMAGINGPROXY", rq.UserInformation.ImplementationVersionName);
        Assert.StartsWith("2.25.", DicomUids.ImplementationClassUid, StringComparison.Ordinal);
        Assert.True(DicomUids.ImplementationClassUid.Length <= 64);
    }

    [Fact]
    public void Refuses_an_invalid_ae_title_of_our_own()
        => Assert.Throws<ArgumentException>(() => PduWriter.WriteAssociateRequest(
            new ArrayBufferWriter<byte>(), "BAD\\AE", "X", 1, DicomUids.Verification, DicomUids.ImplicitVrLittleEndian, 0, "1.2", ""));

    [Fact]
    public void Writes_the_storescp_refuse_reject_byte_for_byte()
    {
        var writer = new ArrayBufferWriter<byte>();

        PduWriter.WriteAssociateReject(writer, AssociateRejectResult.RejectedPermanent, AssociateRejectSource.ServiceUser, AssociateRejectReasons.ServiceUserNoReasonGiven);

        Assert.Equal(DicomCaptures.RefuseReject, writer.WrittenSpan.ToArray());
    }

    [Fact]
    public void Writes_the_no_healthy_backend_reject_from_protocols_md()
    {
        var writer = new ArrayBufferWriter<byte>();

        PduWriter.WriteAssociateReject(writer, AssociateRejectResult.RejectedTransient, AssociateRejectSource.ServiceProviderPresentation, AssociateRejectReasons.ServiceProviderPresentationTemporaryCongestion);

        Assert.Equal(Convert.FromHexString("03000000000400020301"), writer.WrittenSpan.ToArray());
    }

    [Fact]
    public void Writes_release_and_abort_pdus_byte_for_byte()
    {
        var writer = new ArrayBufferWriter<byte>();
        PduWriter.WriteReleaseRequest(writer);
        PduWriter.WriteReleaseResponse(writer);
        PduWriter.WriteAbort(writer, AbortSource.ServiceUser, AbortReason.ReasonNotSpecified);
        PduWriter.WriteAbort(writer, AbortSource.ServiceProvider, AbortReason.UnrecognizedPdu);

        byte[] expected = [.. DicomCaptures.ReleaseRequest, .. DicomCaptures.ReleaseResponse, .. DicomCaptures.UserAbort, .. Convert.FromHexString("07000000000400000201")];
        Assert.Equal(expected, writer.WrittenSpan.ToArray());
    }

    [Fact]
    public void Writes_the_dcmtk_echo_request_p_data_byte_for_byte()
    {
        var writer = new ArrayBufferWriter<byte>();
        Span<byte> command = stackalloc byte[DimseCommandWriter.EchoRequestLength];
        DimseCommandWriter.WriteEchoRequest(command, messageId: 1);

        var written = PduWriter.WritePDataTransfer(writer, 1, MessageControlHeader.Command | MessageControlHeader.LastFragment, command);

        Assert.Equal(80, written);
        Assert.Equal(DicomCaptures.EchoRequestPData, writer.WrittenSpan.ToArray());
    }

    [Fact]
    public void Describes_reject_reasons_by_their_table_9_21_names()
    {
        Assert.Equal("called-AE-title-not-recognized", AssociateRejectReasons.Describe(AssociateRejectSource.ServiceUser, 7));
        Assert.Equal("protocol-version-not-supported", AssociateRejectReasons.Describe(AssociateRejectSource.ServiceProviderAcse, 2));
        Assert.Equal("local-limit-exceeded", AssociateRejectReasons.Describe(AssociateRejectSource.ServiceProviderPresentation, 2));
        Assert.Equal("reserved", AssociateRejectReasons.Describe(AssociateRejectSource.ServiceUser, 5));
    }
}
