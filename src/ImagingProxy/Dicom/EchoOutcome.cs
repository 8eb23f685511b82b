namespace ImagingProxy.Dicom;

/// <summary>How a C-ECHO attempt ended.</summary>
public enum EchoOutcome
{
    /// <summary>Associated, C-ECHO-RSP status 0x0000, released.</summary>
    Success,

    /// <summary>A-ASSOCIATE-RJ received (PS3.8 §9.3.4); see the reject fields.</summary>
    Rejected,

    /// <summary>A-ABORT received (PS3.8 §9.3.8); see the abort fields.</summary>
    Aborted,

    /// <summary>Associated, but the Verification presentation context was not accepted (PS3.8 §9.3.3.2).</summary>
    VerificationNotAccepted,

    /// <summary>C-ECHO-RSP with a status other than success (PS3.7 §9.1.5.1.4); see <see cref="EchoResult.Status"/>.</summary>
    BadStatus,

    /// <summary>The peer broke the protocol (unexpected or malformed PDU, wrong response); we sent A-ABORT.</summary>
    ProtocolError,

    /// <summary>The TCP connection could not be opened.</summary>
    ConnectionFailed,

    /// <summary>The peer closed or reset the connection before the exchange finished.</summary>
    ConnectionClosed,

    /// <summary>The configured timeout expired.</summary>
    Timeout,

    /// <summary>The caller's token was canceled.</summary>
    Canceled,
}
