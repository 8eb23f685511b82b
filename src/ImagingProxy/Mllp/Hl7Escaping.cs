using System.Buffers;
using System.Text;
using System.Text.Unicode;

namespace ImagingProxy.Mllp;

/// <summary>HL7 escape sequences (HL7 v2.5 §2.7) and the character set rules of the codec.</summary>
/// <remarks>
/// <para>
/// Reading: <c>\F\ \S\ \T\ \R\ \E\</c> (and <c>\P\</c> when a truncation character is declared) become the delimiter
/// they stand for, <c>\Xhh...\</c> becomes the bytes it spells; other sequences (<c>\.br\</c>, <c>\H\</c>,
/// <c>\Cxxyy\</c> ...) are kept as written. Unescaping works on bytes, then the bytes are decoded per MSH-18.
/// </para>
/// <para>
/// Writing: text the proxy generates (MSA-3, ERR-8) is encoded in the sender's declared character set when the codec
/// knows it (UTF-8, ISO 8859-1), otherwise as ASCII with '?' for anything else; delimiters are escaped and control
/// characters (CR, LF, and the MLLP block bytes) become spaces, so the text can never break a segment or a frame.
/// Fields copied from the original message are copied as bytes, already in the declared character set.
/// </para>
/// </remarks>
public static class Hl7Escaping
{
    private static readonly Encoding s_latin1Strict = Encoding.GetEncoding(
        "iso-8859-1", new EncoderReplacementFallback("?"), DecoderFallback.ReplacementFallback);

    private static readonly Encoding s_asciiStrict = Encoding.GetEncoding(
        "us-ascii", new EncoderReplacementFallback("?"), DecoderFallback.ReplacementFallback);

    /// <summary>Unescapes and decodes a field value.</summary>
    public static string Decode(ReadOnlySpan<byte> raw, in Hl7Delimiters delimiters, Hl7CharacterSet characterSet)
    {
        if (raw.IsEmpty)
        {
            return string.Empty;
        }

        if (delimiters.Escape == 0 || !raw.Contains(delimiters.Escape))
        {
            return DecodeBytes(raw, characterSet);
        }

        byte[]? rented = null;
        var buffer = raw.Length <= 256 ? stackalloc byte[256] : (rented = ArrayPool<byte>.Shared.Rent(raw.Length));
        try
        {
            var length = Unescape(raw, delimiters, buffer);
            return DecodeBytes(buffer[..length], characterSet);
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Unescapes <paramref name="raw"/> into <paramref name="destination"/> (at least as long as the input).</summary>
    /// <returns>Bytes written.</returns>
    public static int Unescape(ReadOnlySpan<byte> raw, in Hl7Delimiters delimiters, Span<byte> destination)
    {
        var written = 0;
        var i = 0;
        while (i < raw.Length)
        {
            var b = raw[i];
            if (b != delimiters.Escape)
            {
                destination[written++] = b;
                i++;
                continue;
            }

            var close = raw[(i + 1)..].IndexOf(delimiters.Escape);
            if (close < 0)
            {
                // Unterminated sequence: keep the rest as written.
                raw[i..].CopyTo(destination[written..]);
                written += raw.Length - i;
                break;
            }

            var body = raw.Slice(i + 1, close);
            var length = close + 2;
            var replacement = body.Length == 1 ? body[0] switch
            {
                (byte)'F' => delimiters.Field,
                (byte)'S' => delimiters.Component,
                (byte)'T' => delimiters.Subcomponent,
                (byte)'R' => delimiters.Repetition,
                (byte)'E' => delimiters.Escape,
                (byte)'P' => delimiters.Truncation,
                _ => (byte)0,
            } : (byte)0;

            if (replacement != 0)
            {
                destination[written++] = replacement;
            }
            else if (body.Length >= 3 && body[0] == (byte)'X' && (body.Length - 1) % 2 == 0 && TryHex(body[1..], destination[written..], out var hexBytes))
            {
                written += hexBytes;
            }
            else
            {
                raw.Slice(i, length).CopyTo(destination[written..]);
                written += length;
            }

            i += length;
        }

        return written;
    }

    /// <summary>Largest number of bytes <see cref="Escape"/> can write for a text of <paramref name="textLength"/> characters.</summary>
    public static int GetMaxEscapedByteCount(int textLength) => checked((textLength + 1) * 3);

    /// <summary>
    /// Encodes <paramref name="text"/> in the declared character set (see remarks on the type) and escapes delimiters.
    /// </summary>
    /// <returns>Bytes written; <paramref name="destination"/> must hold <see cref="GetMaxEscapedByteCount"/> bytes.</returns>
    public static int Escape(ReadOnlySpan<char> text, in Hl7Delimiters delimiters, Hl7CharacterSet characterSet, Span<byte> destination)
    {
        var encoding = characterSet switch
        {
            Hl7CharacterSet.Utf8 => Encoding.UTF8,
            Hl7CharacterSet.Latin1 => s_latin1Strict,
            _ => s_asciiStrict,
        };

        byte[]? rented = null;
        var maxBytes = encoding.GetMaxByteCount(text.Length);
        var encoded = maxBytes <= 256 ? stackalloc byte[256] : (rented = ArrayPool<byte>.Shared.Rent(maxBytes));
        try
        {
            var count = encoding.GetBytes(text, encoded);
            var written = 0;
            foreach (var b in encoded[..count])
            {
                var code = b == delimiters.Field ? (byte)'F'
                    : b == delimiters.Component ? (byte)'S'
                    : b == delimiters.Subcomponent ? (byte)'T'
                    : b == delimiters.Repetition ? (byte)'R'
                    : b == delimiters.Escape ? (byte)'E'
                    : delimiters.HasTruncation && b == delimiters.Truncation ? (byte)'P'
                    : (byte)0;
                if (code != 0)
                {
                    destination[written++] = delimiters.Escape;
                    destination[written++] = code;
                    destination[written++] = delimiters.Escape;
                }
                else
                {
                    destination[written++] = b < 0x20 || b == 0x7F ? (byte)' ' : b;
                }
            }

            return written;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Maps MSH-18 (first repetition) to the character sets the codec knows (HL7 table 0211).</summary>
    public static Hl7CharacterSet ParseCharacterSet(ReadOnlySpan<byte> firstRepetition)
    {
        var value = firstRepetition.Trim((byte)' ');
        return value.IsEmpty || value.SequenceEqual("ASCII"u8) ? Hl7CharacterSet.Ascii
            : value.SequenceEqual("UNICODE UTF-8"u8) ? Hl7CharacterSet.Utf8
            : value.SequenceEqual("8859/1"u8) ? Hl7CharacterSet.Latin1
            : Hl7CharacterSet.Other;
    }

    /// <summary>
    /// UTF-8 and ISO 8859-1 as declared; for ASCII and character sets the codec does not know, UTF-8 when the bytes
    /// are valid UTF-8, else ISO 8859-1 (so a log line never loses bytes to replacement characters).
    /// </summary>
    private static string DecodeBytes(ReadOnlySpan<byte> bytes, Hl7CharacterSet characterSet) => characterSet switch
    {
        Hl7CharacterSet.Utf8 => Encoding.UTF8.GetString(bytes),
        Hl7CharacterSet.Latin1 => Encoding.Latin1.GetString(bytes),
        _ => Utf8.IsValid(bytes) ? Encoding.UTF8.GetString(bytes) : Encoding.Latin1.GetString(bytes),
    };

    private static bool TryHex(ReadOnlySpan<byte> hex, Span<byte> destination, out int written)
    {
        written = 0;
        for (var i = 0; i + 1 < hex.Length; i += 2)
        {
            var high = HexValue(hex[i]);
            var low = HexValue(hex[i + 1]);
            if (high < 0 || low < 0)
            {
                written = 0;
                return false;
            }

            destination[written++] = (byte)((high << 4) | low);
        }

        return true;
    }

    private static int HexValue(byte b) => b switch
    {
        >= (byte)'0' and <= (byte)'9' => b - '0',
        >= (byte)'A' and <= (byte)'F' => b - 'A' + 10,
        >= (byte)'a' and <= (byte)'f' => b - 'a' + 10,
        _ => -1,
    };
}
