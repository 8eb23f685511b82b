using System.Buffers;
using System.Buffers.Binary;
using ImagingProxy.Dicom;

namespace ImagingProxy.Tests.Dicom;

public class AssociateParserTests
{
    [Fact]
    public void Parses_the_dcmtk_associate_request()
    {
        Assert.True(AssociateRequest.TryParse(Body(DicomCaptures.AssociateRequest), out var rq, out var error), error.ToString());

        Assert.Equal(1, rq.ProtocolVersion);
        Assert.Equal("STORESCP", rq.CalledAeTitle);
        Assert.Equal("ECHOSCU", rq.CallingAeTitle);
        Assert.Equal(DicomUids.ApplicationContextName, rq.ApplicationContextName);
        var pc = Assert.Single(rq.PresentationContexts);
        Assert.Equal(1, pc.Id);
        Assert.Equal(DicomUids.Verification, pc.AbstractSyntax);
        Assert.Equal([DicomUids.ImplicitVrLittleEndian], pc.TransferSyntaxes);
        Assert.Equal(new UserInformation(16384, "1.2.276.0.7230010.3.0.3.6.7", "OFFIS_DCMTK_367", HasUserIdentity: false), rq.UserInformation);
    }

    [Fact]
    public void Parses_the_dcmtk_associate_accept()
    {
        Assert.True(AssociateAccept.TryParse(Body(DicomCaptures.AssociateAccept), out var ac, out var error), error.ToString());

        Assert.Equal("STORESCP", ac.CalledAeTitle);
        Assert.Equal("ECHOSCU", ac.CallingAeTitle);
        var pc = ac.FindPresentationContext(1);
        Assert.NotNull(pc);
        Assert.Equal(PresentationContextResult.Acceptance, pc.Result);
        Assert.Null(pc.AbstractSyntax);
        Assert.Equal([DicomUids.ImplicitVrLittleEndian], pc.TransferSyntaxes);
        Assert.Equal(16384u, ac.UserInformation.MaxPduLength);
        Assert.Null(ac.FindPresentationContext(3));
    }

    [Fact]
    public void Parses_a_request_body_split_across_segments()
    {
        var pdu = DicomCaptures.AssociateRequest;
        for (var split = 7; split < pdu.Length; split += 13)
        {
            var body = TestSequence.Split(pdu, split).Slice(6);
            Assert.True(AssociateRequest.TryParse(body, out var rq, out _));
            Assert.Equal("STORESCP", rq.CalledAeTitle);
        }
    }

    [Fact]
    public void Detects_a_user_identity_sub_item_without_keeping_it()
    {
        // Sub-item 0x58: type 2 (username + passcode), no response requested, "u", "p" (PS3.7 D.3.3.7.1).
        byte[] identity = [0x58, 0x00, 0x00, 0x0A, 0x02, 0x00, 0x00, 0x01, (byte)'u', 0x00, 0x01, (byte)'p', 0x00, 0x00];
        identity[3] = (byte)(identity.Length - 4);
        var pdu = AppendToUserInformation(DicomCaptures.AssociateRequest, identity);

        Assert.True(AssociateRequest.TryParse(Body(pdu), out var rq, out var error), error.ToString());
        Assert.True(rq.UserInformation.HasUserIdentity);
    }

    [Fact]
    public void Skips_unknown_user_information_sub_items()
    {
        var pdu = AppendToUserInformation(DicomCaptures.AssociateRequest, [0x5F, 0x00, 0x00, 0x02, 0xAB, 0xCD]);

        Assert.True(AssociateRequest.TryParse(Body(pdu), out var rq, out _));
        Assert.False(rq.UserInformation.HasUserIdentity);
    }

    [Fact]
    public void Trims_ae_titles_with_leading_spaces()
    {
        var pdu = DicomCaptures.AssociateRequest;
        "  PACS1          "u8[..16].CopyTo(pdu.AsSpan(10));

        Assert.True(AssociateRequest.TryParse(Body(pdu), out var rq, out _));
        Assert.Equal("PACS1", rq.CalledAeTitle);
    }

    public static TheoryData<string, AssociateParseError> Malformations => new()
    {
        { "truncated fixed part", AssociateParseError.TooShort },
        { "protocol version 2", AssociateParseError.ProtocolVersionNotSupported },
        { "called AE all spaces", AssociateParseError.InvalidCalledAeTitle },
        { "calling AE with backslash", AssociateParseError.InvalidCallingAeTitle },
        { "calling AE with control character", AssociateParseError.InvalidCallingAeTitle },
        { "item length past end", AssociateParseError.ItemLengthInvalid },
        { "no user information", AssociateParseError.InvalidUserInformation },
        { "no application context", AssociateParseError.InvalidApplicationContext },
        { "no presentation context", AssociateParseError.MissingPresentationContext },
        { "only an accept's presentation context item", AssociateParseError.MissingPresentationContext },
        { "maximum length of 2 bytes", AssociateParseError.InvalidMaximumLength },
        { "presentation context without transfer syntax", AssociateParseError.InvalidPresentationContext },
    };

    [Theory]
    [MemberData(nameof(Malformations))]
    public void Names_each_malformation(string malformation, AssociateParseError expected)
    {
        var pdu = DicomCaptures.AssociateRequest;
        byte[] body = malformation switch
        {
            "truncated fixed part" => pdu[6..70],
            "protocol version 2" => Patch(pdu, 6, 0x00, 0x02)[6..],
            "called AE all spaces" => Patch(pdu, 10, [.. Enumerable.Repeat((byte)' ', 16)])[6..],
            "calling AE with backslash" => Patch(pdu, 26, (byte)'A', (byte)'\\')[6..],
            "calling AE with control character" => Patch(pdu, 26, (byte)'A', 0x09)[6..],
            "item length past end" => Patch(pdu, 0x97, 0x00, 0xFF)[6..],
            "no user information" => pdu[6..0x95],
            "no application context" => [.. pdu[6..0x4A], .. pdu[0x63..]],
            "no presentation context" => [.. pdu[6..0x63], .. pdu[0x95..]],
            "only an accept's presentation context item" => Patch(pdu, 0x63, 0x21)[6..],
            "maximum length of 2 bytes" => Patch(pdu, 0x99, 0x51, 0x00, 0x00, 0x02, 0x52, 0x00)[6..],
            "presentation context without transfer syntax" => Patch(pdu, 0x80, 0x41)[6..],
            _ => throw new ArgumentOutOfRangeException(nameof(malformation)),
        };

        Assert.False(AssociateRequest.TryParse(new ReadOnlySequence<byte>(body), out var rq, out var error));
        Assert.Null(rq);
        Assert.Equal(expected, error);
    }

    [Fact]
    public void A_request_that_does_not_parse_is_named_by_its_structure_not_by_an_invalid_ae_title()
    {
        // Calling AE with a control character (an RJ on its own) and an item length past the end (A-ABORT): PS3.8 §9.3.4
        // judges the fields of a PDU that parses; one that does not is aborted (Table 9-10 AA-1).
        var pdu = Patch(Patch(DicomCaptures.AssociateRequest, 26, (byte)'A', 0x09), 0x97, 0x00, 0xFF);

        Assert.False(AssociateRequest.TryParse(Body(pdu), out _, out var error));
        Assert.Equal(AssociateParseError.ItemLengthInvalid, error);
    }

    [Theory]
    [InlineData("ECHOSCU         ", null)]
    [InlineData("  PACS1         ", null)]
    [InlineData("                ", "blank (spaces or NULs only)")]
    [InlineData("  A\\B           ", "backslash at byte 4")]
    [InlineData("AB\t             ", "control character 0x09 at byte 3")]
    [InlineData("\u007F               ", "control character 0x7F at byte 1")]
    [InlineData("ABCDEFGHIJKLMNO\u00FF", "non-ASCII byte 0xFF at byte 16")]
    [InlineData("CT1\0\0\0\0\0\0\0\0\0\0\0\0\0", null)] // NUL padded, as some older modalities do (dcmtk accepts it)
    [InlineData("CT1 \0\0\0\0\0\0\0\0\0\0\0\0", null)]
    [InlineData("\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", "blank (spaces or NULs only)")]
    [InlineData("C\0T1            ", "control character 0x00 at byte 2")]
    public void Describes_what_makes_an_ae_title_field_invalid(string field, string? expected)
    {
        var bytes = field.Select(c => (byte)c).ToArray();
        Assert.Equal(AeTitle.Length, bytes.Length);

        Assert.Equal(expected, AeTitle.DescribeInvalid(bytes));
        Assert.Equal(expected is null, AeTitle.TryDecode(bytes, out _));
    }

    [Fact]
    public void Does_not_test_the_ae_titles_of_an_accept()
    {
        var pdu = Patch(DicomCaptures.AssociateAccept, 10, [.. Enumerable.Repeat((byte)' ', 16)]);

        Assert.True(AssociateAccept.TryParse(Body(pdu), out var ac, out _));
        Assert.Equal("", ac.CalledAeTitle);
    }

    [Fact]
    public void Reads_a_rejected_presentation_context_result()
    {
        var pdu = Patch(DicomCaptures.AssociateAccept, DicomCaptures.AcceptResultOffset, 3);

        Assert.True(AssociateAccept.TryParse(Body(pdu), out var ac, out _));
        Assert.Equal(PresentationContextResult.AbstractSyntaxNotSupported, ac.PresentationContexts[0].Result);
    }

    [Fact]
    public void Accepts_a_rejected_presentation_context_without_a_transfer_syntax_in_an_accept()
    {
        // PS3.8 §9.3.3.2: the transfer syntax sub-item of a context that is not accepted is not significant, so it is not required.
        var pdu = DicomCaptures.AssociateAccept;
        byte[] body = [.. pdu[6..0x63], 0x21, 0x00, 0x00, 0x04, 0x01, 0x00, 0x03, 0x00, .. pdu[0x80..]];

        Assert.True(AssociateAccept.TryParse(new ReadOnlySequence<byte>(body), out var ac, out var error), error.ToString());
        var pc = Assert.Single(ac.PresentationContexts);
        Assert.Equal(PresentationContextResult.AbstractSyntaxNotSupported, pc.Result);
        Assert.Empty(pc.TransferSyntaxes);
    }

    [Fact]
    public void Parses_an_accept_body_split_across_segments()
    {
        var pdu = DicomCaptures.AssociateAccept;
        for (var split = 7; split < pdu.Length; split += 11)
        {
            var body = TestSequence.Split(pdu, split).Slice(6);
            Assert.True(AssociateAccept.TryParse(body, out var ac, out var error), $"split at {split}: {error}");
            Assert.Equal("STORESCP", ac.CalledAeTitle);
            Assert.Equal(PresentationContextResult.Acceptance, Assert.Single(ac.PresentationContexts).Result);
        }
    }

    public static TheoryData<string, AssociateParseError> AcceptMalformations => new()
    {
        { "fixed part one byte short", AssociateParseError.TooShort },
        { "protocol version 2", AssociateParseError.ProtocolVersionNotSupported },
        { "item length past end", AssociateParseError.ItemLengthInvalid },
        { "no application context", AssociateParseError.InvalidApplicationContext },
        { "no presentation context", AssociateParseError.MissingPresentationContext },
        { "only a request's presentation context item", AssociateParseError.MissingPresentationContext },
        { "no user information", AssociateParseError.InvalidUserInformation },
    };

    [Theory]
    [MemberData(nameof(AcceptMalformations))]
    public void Names_each_malformation_of_an_accept(string malformation, AssociateParseError expected)
    {
        // The dcmtk AC: fixed part to 0x4A, Application Context to 0x63, Presentation Context (0x21) to 0x80, User Information.
        var pdu = DicomCaptures.AssociateAccept;
        byte[] body = malformation switch
        {
            "fixed part one byte short" => pdu[6..(6 + 67)],
            "protocol version 2" => Patch(pdu, 6, 0x00, 0x02)[6..],
            "item length past end" => Patch(pdu, 0x82, 0x00, 0xFF)[6..],
            "no application context" => [.. pdu[6..0x4A], .. pdu[0x63..]],
            "no presentation context" => [.. pdu[6..0x63], .. pdu[0x80..]],
            "only a request's presentation context item" => Patch(pdu, 0x63, 0x20)[6..],
            "no user information" => pdu[6..0x80],
            _ => throw new ArgumentOutOfRangeException(nameof(malformation)),
        };

        Assert.False(AssociateAccept.TryParse(new ReadOnlySequence<byte>(body), out var ac, out var error));
        Assert.Null(ac);
        Assert.Equal(expected, error);
    }

    internal static ReadOnlySequence<byte> Body(byte[] pdu) => new(pdu, 6, pdu.Length - 6);

    internal static byte[] Patch(byte[] pdu, int offset, params byte[] bytes)
    {
        var copy = pdu.ToArray();
        bytes.CopyTo(copy, offset);
        return copy;
    }

    /// <summary>Appends a sub-item to the User Information item (the last item of the dcmtk RQ) and fixes both lengths.</summary>
    internal static byte[] AppendToUserInformation(byte[] pdu, byte[] subItem)
    {
        const int userInformationOffset = 0x95;
        byte[] result = [.. pdu, .. subItem];
        BinaryPrimitives.WriteUInt32BigEndian(result.AsSpan(2), (uint)(result.Length - 6));
        var itemLength = BinaryPrimitives.ReadUInt16BigEndian(result.AsSpan(userInformationOffset + 2));
        BinaryPrimitives.WriteUInt16BigEndian(result.AsSpan(userInformationOffset + 2), (ushort)(itemLength + subItem.Length));
        return result;
    }
}
