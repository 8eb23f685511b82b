using System.Globalization;
using System.Text;

namespace ImagingProxy.Telemetry;

/// <summary>
/// Text from the wire (an HL7 control id or message type, a SOAP action) as log lines and fault texts show it: control
/// characters (C0, DEL, C1) written as <c>\xHH</c>, as Kestrel writes them in its bad-request lines. A client's line
/// feed or terminal escape sequence then stays text instead of starting a forged log line or colouring a terminal, and
/// the text can go into an XML fault (XML 1.0 allows no C0 control but tab, LF and CR).
/// </summary>
public static class LogText
{
    /// <summary><paramref name="text"/> itself when it holds no control character (no copy), else a copy with each written as <c>\xHH</c>.</summary>
    public static string Printable(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        var first = IndexOfControl(text);
        if (first < 0)
        {
            return text;
        }

        var printable = new StringBuilder(text.Length + 8);
        printable.Append(text, 0, first);
        for (var i = first; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsControl(c))
            {
                printable.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:X2}");
            }
            else
            {
                printable.Append(c);
            }
        }

        return printable.ToString();
    }

    private static int IndexOfControl(string text)
    {
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsControl(text[i]))
            {
                return i;
            }
        }

        return -1;
    }
}
