using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace ImagingProxy.Dicom;

/// <summary>
/// Application Entity titles as carried in the A-ASSOCIATE fixed part: 16 bytes of ISO 646 G0, space padded
/// (PS3.8 §9.3.2; PS3.5 §6.2 VR "AE"). Leading and trailing spaces are not significant; 16 spaces means "no name".
/// Trailing NUL bytes are read as padding too: some older modalities pad with NULs (C strings), and dcmtk, like most
/// PACS, accepts them; a NUL before a significant character is still a control character.
/// </summary>
public static class AeTitle
{
    /// <summary>Bytes an AE title occupies in a PDU.</summary>
    public const int Length = 16;

    /// <summary>Decodes a 16-byte field strictly: trimmed, non-empty, G0 characters other than backslash only.</summary>
    public static bool TryDecode(ReadOnlySpan<byte> field, [NotNullWhen(true)] out string? aeTitle)
    {
        aeTitle = null;
        var trimmed = Significant(field);
        if (trimmed.IsEmpty)
        {
            return false;
        }

        foreach (var b in trimmed)
        {
            if (!IsAllowed(b))
            {
                return false;
            }
        }

        aeTitle = Encoding.ASCII.GetString(trimmed);
        return true;
    }

    /// <summary>
    /// Why a 16-byte field fails <see cref="TryDecode"/>, for a log line: "blank (spaces or NULs only)", or the first byte the AE VR
    /// does not allow as "control character 0x01 at byte 3", "non-ASCII byte 0xC3 at byte 1" or "backslash at byte 6"
    /// (1-based within the field). Null when the field is valid. The title's own characters are not repeated.
    /// </summary>
    public static string? DescribeInvalid(ReadOnlySpan<byte> field)
    {
        var start = field.Length - field.TrimStart((byte)' ').Length;
        var trimmed = Significant(field);
        if (trimmed.IsEmpty)
        {
            return "blank (spaces or NULs only)";
        }

        for (var i = 0; i < trimmed.Length; i++)
        {
            var b = trimmed[i];
            if (!IsAllowed(b))
            {
                var at = (start + i + 1).ToString(CultureInfo.InvariantCulture);
                return b switch
                {
                    (byte)'\\' => $"backslash at byte {at}",
                    > 0x7F => $"non-ASCII byte 0x{b:X2} at byte {at}",
                    _ => $"control character 0x{b:X2} at byte {at}",
                };
            }
        }

        return null;
    }

    /// <summary>Decodes a field leniently (for reserved echoes such as the AC's, which are not tested): trimmed, non-ASCII replaced.</summary>
    public static string DecodeLenient(ReadOnlySpan<byte> field) => Encoding.ASCII.GetString(Significant(field));

    /// <summary>The field without its padding: leading spaces, trailing spaces and NULs.</summary>
    private static ReadOnlySpan<byte> Significant(ReadOnlySpan<byte> field) => field.TrimEnd(" \0"u8).TrimStart((byte)' ');

    /// <summary>True when <paramref name="aeTitle"/> is 1-16 significant characters of the AE VR.</summary>
    public static bool IsValid(ReadOnlySpan<char> aeTitle)
    {
        var trimmed = aeTitle.Trim(' ');
        if (trimmed.IsEmpty || aeTitle.Length > Length)
        {
            return false;
        }

        foreach (var c in trimmed)
        {
            if (c > 0x7F || !IsAllowed((byte)c))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>Writes the AE title space padded into a 16-byte field. Returns false (writing nothing) if it is not valid.</summary>
    public static bool TryWrite(ReadOnlySpan<char> aeTitle, Span<byte> field)
    {
        if (field.Length < Length || !IsValid(aeTitle))
        {
            return false;
        }

        var trimmed = aeTitle.Trim(' ');
        var destination = field[..Length];
        destination.Fill((byte)' ');
        for (var i = 0; i < trimmed.Length; i++)
        {
            destination[i] = (byte)trimmed[i];
        }

        return true;
    }

    /// <summary>Writes the AE title space padded; throws for an invalid title (our own configuration, not wire data).</summary>
    public static void Write(ReadOnlySpan<char> aeTitle, Span<byte> field)
    {
        if (!TryWrite(aeTitle, field))
        {
            throw new ArgumentException("An AE title is 1-16 ASCII characters without control characters or backslash.", nameof(aeTitle));
        }
    }

    // PS3.5 §6.2: default character repertoire excluding character code 5CH (backslash) and control characters.
    private static bool IsAllowed(byte b) => b is >= 0x20 and < 0x7F and not (byte)'\\';
}
