using System.Buffers;
using System.Diagnostics.CodeAnalysis;

namespace ImagingProxy.Dicom;

/// <summary>A parsed A-ASSOCIATE-RQ (PS3.8 §9.3.2). One per association, allocated once.</summary>
public sealed class AssociateRequest
{
    internal AssociateRequest(
        ushort protocolVersion,
        string calledAeTitle,
        string callingAeTitle,
        string applicationContextName,
        IReadOnlyList<PresentationContext> presentationContexts,
        UserInformation userInformation)
    {
        ProtocolVersion = protocolVersion;
        CalledAeTitle = calledAeTitle;
        CallingAeTitle = callingAeTitle;
        ApplicationContextName = applicationContextName;
        PresentationContexts = presentationContexts;
        UserInformation = userInformation;
    }

    public ushort ProtocolVersion { get; }

    /// <summary>Trimmed Called-AE-title: the AE the requestor wants (the routing key).</summary>
    public string CalledAeTitle { get; }

    /// <summary>Trimmed Calling-AE-title: the requestor.</summary>
    public string CallingAeTitle { get; }

    public string ApplicationContextName { get; }

    public IReadOnlyList<PresentationContext> PresentationContexts { get; }

    public UserInformation UserInformation { get; }

    /// <summary>Parses the body (the bytes after the 6-byte PDU header) of an A-ASSOCIATE-RQ. Never throws on wire data.</summary>
    public static bool TryParse(in ReadOnlySequence<byte> body, [NotNullWhen(true)] out AssociateRequest? request, out AssociateParseError error)
    {
        request = null;
        error = AssociateParser.Parse(body, isAccept: false, out var fields);
        if (error != AssociateParseError.None)
        {
            return false;
        }

        request = new AssociateRequest(
            fields.ProtocolVersion,
            fields.CalledAeTitle,
            fields.CallingAeTitle,
            fields.ApplicationContextName,
            fields.PresentationContexts,
            fields.UserInformation);
        return true;
    }
}
