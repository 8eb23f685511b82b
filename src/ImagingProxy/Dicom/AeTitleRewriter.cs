using System.Buffers;

namespace ImagingProxy.Dicom;

/// <summary>
/// Rewrites the Called/Calling AE title fields of a whole A-ASSOCIATE-RQ or -AC PDU in place (PS3.8 §9.3.2, §9.3.3:
/// same fixed layout; PDU offsets 10 and 26, 16 bytes space padded). The proxy rewrites the Called AE of the RQ it
/// forwards to a node and restores the client's Called AE in the AC it returns. Nothing else in the PDU changes, so
/// lengths stay valid.
/// </summary>
public static class AeTitleRewriter
{
    /// <summary>Offset of Called-AE-title from the start of the PDU (PS3.8 bytes 11-26).</summary>
    public const int CalledAeTitleOffset = 10;

    /// <summary>Offset of Calling-AE-title from the start of the PDU (PS3.8 bytes 27-42).</summary>
    public const int CallingAeTitleOffset = 26;

    internal const int MinimumPduLength = CallingAeTitleOffset + AeTitle.Length;

    /// <summary>Rewrites the Called AE title. False (nothing written) if the bytes are not an RQ/AC PDU or the title is invalid.</summary>
    public static bool TryRewriteCalledAeTitle(Span<byte> pdu, ReadOnlySpan<char> calledAeTitle)
        => IsAssociatePdu(pdu) && AeTitle.TryWrite(calledAeTitle, pdu.Slice(CalledAeTitleOffset, AeTitle.Length));

    /// <summary>Rewrites the Calling AE title. False (nothing written) if the bytes are not an RQ/AC PDU or the title is invalid.</summary>
    public static bool TryRewriteCallingAeTitle(Span<byte> pdu, ReadOnlySpan<char> callingAeTitle)
        => IsAssociatePdu(pdu) && AeTitle.TryWrite(callingAeTitle, pdu.Slice(CallingAeTitleOffset, AeTitle.Length));

    /// <summary>
    /// Copies a PDU held in a pipe buffer to <paramref name="destination"/>, replacing its Called AE title on the way
    /// (for an AC read from the node and written to the client). False (nothing written) if not an RQ/AC or the title is invalid.
    /// </summary>
    public static bool TryCopyWithCalledAeTitle(in ReadOnlySequence<byte> pdu, ReadOnlySpan<char> calledAeTitle, IBufferWriter<byte> destination)
    {
        ArgumentNullException.ThrowIfNull(destination);
        if (pdu.Length < MinimumPduLength || pdu.Length > int.MaxValue || !AeTitle.IsValid(calledAeTitle))
        {
            return false;
        }

        var length = (int)pdu.Length;
        var span = destination.GetSpan(length)[..length];
        pdu.CopyTo(span);
        if (!TryRewriteCalledAeTitle(span, calledAeTitle))
        {
            return false;
        }

        destination.Advance(length);
        return true;
    }

    private static bool IsAssociatePdu(ReadOnlySpan<byte> pdu)
        => pdu.Length >= MinimumPduLength && pdu[0] is (byte)PduType.AssociateRequest or (byte)PduType.AssociateAccept;
}
