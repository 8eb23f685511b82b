namespace ImagingProxy.Mllp;

/// <summary>
/// Bytes and limits of the Minimal Lower Layer Protocol (HL7 v2.5 Appendix C, "MLLP Release 1")
/// and the defaults of the HL7 v2 codec.
/// </summary>
public static class MllpConstants
{
    /// <summary>Start block &lt;SB&gt; (VT, 0x0B): the first byte of every frame.</summary>
    public const byte StartBlock = 0x0B;

    /// <summary>End block &lt;EB&gt; (FS, 0x1C): first byte of the two-byte frame trailer.</summary>
    public const byte EndBlock = 0x1C;

    /// <summary>Carriage return (0x0D): second byte of the frame trailer and the HL7 segment terminator.</summary>
    public const byte CarriageReturn = 0x0D;

    /// <summary>Line feed (0x0A): tolerated as a segment terminator on input (LF or CRLF), never written.</summary>
    public const byte LineFeed = 0x0A;

    /// <summary>Default largest message (bytes between &lt;SB&gt; and &lt;EB&gt;) a connection accepts: 16 MiB.</summary>
    public const int DefaultMaxFrameSize = 16 * 1024 * 1024;

    /// <summary>
    /// Default largest MSH segment the header reader accepts (and copies when a message spans several buffers).
    /// MSH is a few hundred bytes in practice; 8 KiB leaves room for long MSH-21 profile lists.
    /// </summary>
    public const int DefaultMaxHeaderSegmentLength = 8 * 1024;

    /// <summary>
    /// How far into a reply the acknowledgement reader looks for MSA (MSH + MSA are normally well below 1 KiB).
    /// </summary>
    public const int DefaultMaxAckScanLength = 16 * 1024;

    /// <summary>MSH-12 written in an acknowledgement when the original's version could not be read.</summary>
    public const string FallbackVersionId = "2.5";
}
