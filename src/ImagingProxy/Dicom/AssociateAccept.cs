using System.Buffers;
using System.Diagnostics.CodeAnalysis;

namespace ImagingProxy.Dicom;

/// <summary>
/// A parsed A-ASSOCIATE-AC (PS3.8 §9.3.3). Its AE title fields are "reserved, not tested": they are decoded leniently
/// and only informational.
/// </summary>
public sealed class AssociateAccept : AssociatePdu
{
    private AssociateAccept(in AssociateFields fields)
        : base(fields)
    {
    }

    /// <summary>The context with this id, or null.</summary>
    public PresentationContext? FindPresentationContext(byte id)
    {
        foreach (var pc in PresentationContexts)
        {
            if (pc.Id == id)
            {
                return pc;
            }
        }

        return null;
    }

    /// <summary>Parses the body (the bytes after the 6-byte PDU header) of an A-ASSOCIATE-AC. Never throws on wire data.</summary>
    public static bool TryParse(in ReadOnlySequence<byte> body, [NotNullWhen(true)] out AssociateAccept? accept, out AssociateParseError error)
    {
        accept = null;
        error = AssociateParser.Parse(body, isAccept: true, out var fields);
        if (error != AssociateParseError.None)
        {
            return false;
        }

        accept = new AssociateAccept(fields);
        return true;
    }
}
