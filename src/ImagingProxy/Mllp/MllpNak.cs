using System.Buffers;
using System.Globalization;

namespace ImagingProxy.Mllp;

/// <summary>ImagingProxy's own negative acknowledgements (HL7 v2.5 §2.9; protocols.md §3.7).</summary>
/// <remarks>
/// Original mode gets <c>AR</c>, enhanced mode (MSH-15/16 valued) <c>CR</c>; MSA-2 is the message's MSH-10, MSA-3 and
/// ERR-8 carry the reason. ImagingProxy never writes an accept: AA/CA only ever come from a node.
/// </remarks>
internal static class MllpNak
{
    private static long s_sequence;

    /// <summary>Writes a whole MLLP frame holding the NAK.</summary>
    public static void WriteFrame(IBufferWriter<byte> writer, in Hl7Header original, string text, Hl7ErrorCode error, DateTimeOffset timestamp)
    {
        var code = original.IsEnhancedAcknowledgmentMode ? AcknowledgmentCode.CommitReject : AcknowledgmentCode.ApplicationReject;
        MllpFrameWriter.WriteStartBlock(writer);
        Hl7AckWriter.Write(writer, original, code, NextControlId(), timestamp, text, error);
        MllpFrameWriter.WriteEndBlock(writer);
    }

    /// <summary>MSH-10 of the NAK itself: unique within this process.</summary>
    private static string NextControlId()
        => "IPX" + Interlocked.Increment(ref s_sequence).ToString("D10", CultureInfo.InvariantCulture);
}
