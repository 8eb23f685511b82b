using System.Buffers;
using ImagingProxy.Dicom;

namespace ImagingProxy.Tests.Dicom;

public class PduReaderTests
{
    [Fact]
    public void Reads_the_dcmtk_associate_request_as_one_pdu_and_slices_its_body()
    {
        var bytes = DicomCaptures.AssociateRequest;
        var buffer = new ReadOnlySequence<byte>(bytes);

        var result = PduReader.TryReadPdu(ref buffer, DicomDefaults.AssociationPduLimit, out var header, out var body);

        Assert.Equal(PduReadResult.Complete, result);
        Assert.Equal(new PduHeader(PduType.AssociateRequest, 205), header);
        Assert.Equal(bytes[6..], body.ToArray());
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void Reads_every_capture_split_at_every_point_the_same_as_unsplit()
    {
        foreach (var (name, pdu) in DicomCaptures.Each())
        {
            for (var split = 1; split < pdu.Length; split++)
            {
                // The prefix alone is incomplete and leaves the buffer untouched.
                var prefix = new ReadOnlySequence<byte>(pdu, 0, split);
                Assert.Equal(PduReadResult.Incomplete, PduReader.TryReadPdu(ref prefix, 65536, out _, out _));
                Assert.Equal(split, prefix.Length);

                var buffer = TestSequence.Split(pdu, split);
                var result = PduReader.TryReadPdu(ref buffer, 65536, out var header, out var body);

                Assert.True(result == PduReadResult.Complete, $"{name} split at {split}: {result}");
                Assert.Equal((PduType)pdu[0], header.Type);
                Assert.Equal(pdu[6..], body.ToArray());
                Assert.True(buffer.IsEmpty);
            }
        }
    }

    [Fact]
    public void Reads_many_pdus_from_one_buffer_in_order()
    {
        var all = DicomCaptures.All;
        var buffer = TestSequence.Split(all, 7, 200, 211, 300);
        var types = new List<PduType>();

        while (PduReader.TryReadPdu(ref buffer, 65536, out var header, out _) == PduReadResult.Complete)
        {
            types.Add(header.Type);
        }

        Assert.Equal(
            [PduType.AssociateRequest, PduType.AssociateAccept, PduType.PDataTransfer, PduType.PDataTransfer, PduType.ReleaseRequest, PduType.ReleaseResponse],
            types);
        Assert.True(buffer.IsEmpty);
    }

    [Fact]
    public void Rejects_pdu_longer_than_limit_before_buffering()
    {
        // Only the 6-byte header has arrived; the body (4 GiB) never needs to be buffered to decide.
        var buffer = new ReadOnlySequence<byte>([0x04, 0x00, 0xFF, 0xFF, 0xFF, 0xFF]);

        var result = PduReader.TryReadPdu(ref buffer, 16384, out var header, out _);

        Assert.Equal(PduReadResult.TooLarge, result);
        Assert.Equal(uint.MaxValue, header.Length);
        Assert.Equal(6, buffer.Length);
    }

    [Fact]
    public void Accepts_pdu_length_equal_to_the_limit()
    {
        var pdu = new byte[6 + 16];
        pdu[0] = 0x04;
        pdu[5] = 16;
        var buffer = new ReadOnlySequence<byte>(pdu);

        Assert.Equal(PduReadResult.Complete, PduReader.TryReadPdu(ref buffer, 16, out _, out _));
    }

    [Theory]
    [InlineData((byte)0x00)]
    [InlineData((byte)0x08)]
    [InlineData((byte)0x16)]
    [InlineData((byte)0xFF)]
    public void Rejects_unknown_pdu_type_from_its_first_byte(byte type)
    {
        var buffer = new ReadOnlySequence<byte>([type]);

        Assert.Equal(PduReadResult.UnknownType, PduReader.TryReadPdu(ref buffer, 65536, out var header, out _));
        Assert.Equal(type, (byte)header.Type);
        Assert.Equal(1, buffer.Length);
    }

    [Fact]
    public void Does_not_test_the_reserved_header_byte()
    {
        var pdu = DicomCaptures.ReleaseRequest;
        pdu[1] = 0xFF;
        var buffer = new ReadOnlySequence<byte>(pdu);

        Assert.Equal(PduReadResult.Complete, PduReader.TryReadPdu(ref buffer, 65536, out _, out _));
    }

    [Fact]
    public void Reports_incomplete_for_an_empty_buffer()
    {
        var buffer = ReadOnlySequence<byte>.Empty;

        Assert.Equal(PduReadResult.Incomplete, PduReader.TryReadPdu(ref buffer, 65536, out _, out _));
    }
}
