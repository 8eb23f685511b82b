using System.Buffers;
using System.Diagnostics.CodeAnalysis;

namespace ImagingProxy.Dicom;

/// <summary>A parsed A-ASSOCIATE-RQ (PS3.8 §9.3.2). One per association, allocated once.</summary>
public sealed class AssociateRequest : AssociatePdu
{
    private AssociateRequest(in AssociateFields fields)
        : base(fields)
    {
    }

    /// <summary>Parses the body (the bytes after the 6-byte PDU header) of an A-ASSOCIATE-RQ. Never throws on wire data.</summary>
    public static bool TryParse(in ReadOnlySequence<byte> body, [NotNullWhen(true)] out AssociateRequest? request, out AssociateParseError error)
    {
        request = null;
        error = AssociateParser.Parse(body, isAccept: false, out var fields);
        if (error != AssociateParseError.None)
        {
            return false;
        }

        request = new AssociateRequest(fields);
        return true;
    }
}
