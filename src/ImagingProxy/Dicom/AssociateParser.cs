using System.Buffers;
using System.Buffers.Binary;
using System.Text;

namespace ImagingProxy.Dicom;

/// <summary>
/// Parses the body of an A-ASSOCIATE-RQ (PS3.8 §9.3.2, Table 9-11) or -AC (§9.3.3, Table 9-17). Every length is checked
/// against its container; reserved fields are never tested; unknown items and user-information sub-items are skipped
/// (PS3.8 D.2 note 2).
/// </summary>
internal static class AssociateParser
{
    /// <summary>Size of the fixed part after the PDU header: version, reserved, called, calling, 32 reserved.</summary>
    public const int FixedPartLength = 68;

    internal const byte ApplicationContextItem = 0x10;
    internal const byte PresentationContextRequestItem = 0x20;
    internal const byte PresentationContextAcceptItem = 0x21;
    internal const byte AbstractSyntaxSubItem = 0x30;
    internal const byte TransferSyntaxSubItem = 0x40;
    internal const byte UserInformationItem = 0x50;
    internal const byte MaximumLengthSubItem = 0x51;
    internal const byte ImplementationClassUidSubItem = 0x52;
    internal const byte ImplementationVersionNameSubItem = 0x55;
    internal const byte UserIdentityRequestSubItem = 0x58;
    internal const byte UserIdentityAcceptSubItem = 0x59;

    public static AssociateParseError Parse(in ReadOnlySequence<byte> body, bool isAccept, out AssociateFields fields)
    {
        // Association PDUs are small and read once per association; the caller bounded the length.
        ReadOnlySpan<byte> span = body.IsSingleSegment ? body.FirstSpan : body.ToArray();
        return Parse(span, isAccept, out fields);
    }

    public static AssociateParseError Parse(ReadOnlySpan<byte> body, bool isAccept, out AssociateFields fields)
    {
        fields = default;
        if (body.Length < FixedPartLength)
        {
            return AssociateParseError.TooShort;
        }

        // PS3.8 §9.3.2: the receiver tests only bit 0 of the protocol-version.
        var version = BinaryPrimitives.ReadUInt16BigEndian(body);
        if ((version & 1) == 0)
        {
            return AssociateParseError.ProtocolVersionNotSupported;
        }

        string? called = null;
        string? calling = null;
        var calledField = body.Slice(4, AeTitle.Length);
        var callingField = body.Slice(4 + AeTitle.Length, AeTitle.Length);
        var aeTitleError = AssociateParseError.None;
        if (isAccept)
        {
            // PS3.8 §9.3.3: reserved, "shall not be tested".
            called = AeTitle.DecodeLenient(calledField);
            calling = AeTitle.DecodeLenient(callingField);
        }
        else if (!AeTitle.TryDecode(calledField, out called))
        {
            aeTitleError = AssociateParseError.InvalidCalledAeTitle;
        }
        else if (!AeTitle.TryDecode(callingField, out calling))
        {
            aeTitleError = AssociateParseError.InvalidCallingAeTitle;
        }

        string? applicationContext = null;
        UserInformation? userInformation = null;
        var contexts = new List<PresentationContext>();
        var items = body[FixedPartLength..];
        while (!items.IsEmpty)
        {
            if (!TryReadItem(ref items, out var type, out var value))
            {
                return AssociateParseError.ItemLengthInvalid;
            }

            switch (type)
            {
                case ApplicationContextItem:
                    if (applicationContext is not null)
                    {
                        return AssociateParseError.InvalidApplicationContext;
                    }

                    applicationContext = DecodeUid(value);
                    break;

                case PresentationContextRequestItem when !isAccept:
                case PresentationContextAcceptItem when isAccept:
                    var error = ParsePresentationContext(value, isAccept, out var context);
                    if (error != AssociateParseError.None)
                    {
                        return error;
                    }

                    contexts.Add(context!);
                    break;

                case UserInformationItem:
                    if (userInformation is not null)
                    {
                        return AssociateParseError.InvalidUserInformation;
                    }

                    error = ParseUserInformation(value, out userInformation);
                    if (error != AssociateParseError.None)
                    {
                        return error;
                    }

                    break;

                default:
                    // Unknown or misplaced item: skipped.
                    break;
            }
        }

        if (applicationContext is null)
        {
            return AssociateParseError.InvalidApplicationContext;
        }

        if (contexts.Count == 0)
        {
            return AssociateParseError.MissingPresentationContext;
        }

        if (userInformation is null)
        {
            return AssociateParseError.InvalidUserInformation;
        }

        // An AE title is judged only in a PDU that parses (PS3.8 §9.3.4 RJ); one that does not gets A-ABORT whatever its titles.
        if (aeTitleError != AssociateParseError.None)
        {
            return aeTitleError;
        }

        fields = new AssociateFields(version, called!, calling!, applicationContext, contexts, userInformation);
        return AssociateParseError.None;
    }

    // PS3.8 §9.3.2.2 (RQ, item 0x20) and §9.3.3.2 (AC, item 0x21): pcid, reserved, reserved|result, reserved, sub-items.
    private static AssociateParseError ParsePresentationContext(ReadOnlySpan<byte> value, bool isAccept, out PresentationContext? context)
    {
        context = null;
        if (value.Length < 4)
        {
            return AssociateParseError.ItemLengthInvalid;
        }

        var id = value[0];
        var result = isAccept ? (PresentationContextResult)value[2] : PresentationContextResult.Acceptance;
        string? abstractSyntax = null;
        var transferSyntaxes = new List<string>(1);
        var subItems = value[4..];
        while (!subItems.IsEmpty)
        {
            if (!TryReadItem(ref subItems, out var type, out var subValue))
            {
                return AssociateParseError.ItemLengthInvalid;
            }

            if (type == AbstractSyntaxSubItem && !isAccept)
            {
                if (abstractSyntax is not null)
                {
                    return AssociateParseError.InvalidPresentationContext;
                }

                abstractSyntax = DecodeUid(subValue);
            }
            else if (type == TransferSyntaxSubItem)
            {
                transferSyntaxes.Add(DecodeUid(subValue));
            }
        }

        if (!isAccept && (abstractSyntax is null || transferSyntaxes.Count == 0))
        {
            return AssociateParseError.InvalidPresentationContext;
        }

        context = new PresentationContext(id, abstractSyntax, transferSyntaxes, result);
        return AssociateParseError.None;
    }

    // PS3.8 §9.3.2.3 and Annex D; PS3.7 Annex D.3.3.
    private static AssociateParseError ParseUserInformation(ReadOnlySpan<byte> value, out UserInformation? userInformation)
    {
        userInformation = null;
        uint maxLength = 0;
        string? implementationClassUid = null;
        string? implementationVersionName = null;
        var hasUserIdentity = false;
        while (!value.IsEmpty)
        {
            if (!TryReadItem(ref value, out var type, out var subValue))
            {
                return AssociateParseError.ItemLengthInvalid;
            }

            switch (type)
            {
                case MaximumLengthSubItem:
                    if (subValue.Length != 4)
                    {
                        return AssociateParseError.InvalidMaximumLength;
                    }

                    maxLength = BinaryPrimitives.ReadUInt32BigEndian(subValue);
                    break;
                case ImplementationClassUidSubItem:
                    implementationClassUid = DecodeUid(subValue);
                    break;
                case ImplementationVersionNameSubItem:
                    implementationVersionName = Encoding.ASCII.GetString(subValue.Trim((byte)' '));
                    break;
                case UserIdentityRequestSubItem or UserIdentityAcceptSubItem:
                    hasUserIdentity = true;
                    break;
                default:
                    break;
            }
        }

        userInformation = new UserInformation(maxLength, implementationClassUid, implementationVersionName, hasUserIdentity);
        return AssociateParseError.None;
    }

    /// <summary>Reads <c>type:u8 | reserved:u8 | length:u16 BE | value</c> (PS3.8 §9.3.2.x) and advances past it.</summary>
    private static bool TryReadItem(ref ReadOnlySpan<byte> items, out byte type, out ReadOnlySpan<byte> value)
    {
        type = 0;
        value = default;
        if (items.Length < 4)
        {
            return false;
        }

        int length = BinaryPrimitives.ReadUInt16BigEndian(items[2..]);
        if (items.Length - 4 < length)
        {
            return false;
        }

        type = items[0];
        value = items.Slice(4, length);
        items = items[(4 + length)..];
        return true;
    }

    // UIDs in UL items are not padded (PS3.8 §9.3.2.1), but be lenient with a trailing NUL or space some peers add.
    private static string DecodeUid(ReadOnlySpan<byte> value) => Encoding.ASCII.GetString(value.TrimEnd((byte)0).TrimEnd((byte)' '));
}
