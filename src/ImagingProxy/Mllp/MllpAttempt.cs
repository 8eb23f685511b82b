using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Mllp;

/// <summary>What the caller of <see cref="MllpForwarder.StartFirstAttempt"/> and <see cref="MllpForwarder.Received"/> does next.</summary>
internal enum MllpAttemptStep
{
    /// <summary>Await the node's receive it was handed, then give its result to <see cref="MllpForwarder.Received"/> (or its exception to <see cref="MllpForwarder.ReceiveFailed"/>).</summary>
    AwaitAck,

    /// <summary>The attempt is over: <see cref="MllpAttempt.Result"/> holds its result.</summary>
    Done,

    /// <summary>The rest of the attempt (and any further attempt) is <see cref="MllpForwarder.ContinueAsync"/>'s.</summary>
    Continue,
}

/// <summary>
/// One attempt of a message to one node, while it is in flight: what its end needs (the node, whether the connection
/// was reused, the timeout). One instance per inbound connection, reused message after message.
/// </summary>
internal sealed class MllpAttempt
{
    public MllpAttemptStage Stage { get; set; }

    public DestinationState? Destination { get; set; }

    public MllpNodeConnection? Node { get; set; }

    /// <summary>The connection had carried a message before (it may have gone stale in the pool).</summary>
    public bool Reused { get; set; }

    /// <summary>The message is the first on a new TLS connection (a refused client certificate shows only now).</summary>
    public bool TlsFirstUse { get; set; }

    /// <summary>The node connection's unsolicited frame count when the attempt started.</summary>
    public int UnsolicitedBefore { get; set; }

    /// <summary>The node connection's count of bytes outside a frame when the attempt started.</summary>
    public long OutsideBytesBefore { get; set; }

    public TimeSpan AckTimeout { get; set; }

    /// <summary>The attempt's timeout (ACK timeout or delivery budget; also fired by the inbound connection's abort).</summary>
    public CancellationToken Timeout { get; set; }

    /// <summary>Shuts the node connection's receive side when <see cref="Timeout"/> fires, while the ACK is awaited.</summary>
    public CancellationTokenRegistration StopReceiving { get; set; }

    /// <summary>A send that did not complete at once (<see cref="MllpAttemptStage.Sending"/>).</summary>
    public Task<bool>? PendingSend { get; set; }

    /// <summary>Why the attempt failed (<see cref="MllpAttemptStage.Failed"/>).</summary>
    public string? Failure { get; set; }

    /// <summary>The attempt failed because its ACK wait timed out (the connection's receive was stopped).</summary>
    public bool TimedOut { get; set; }

    /// <summary>A fault of ImagingProxy's own that ended the attempt (<see cref="MllpAttemptStage.Failed"/>), not the node's failure.</summary>
    public Exception? Fault { get; set; }

    public MllpAttemptResult Result { get; set; }

    /// <summary>The node's answer as read (valid while the session's ACK buffer holds it), when <see cref="AckRead"/>.</summary>
    public Hl7Ack Ack { get; set; }

    /// <summary>True when the frame taken as the answer was read as an acknowledgement (MSA found).</summary>
    public bool AckRead { get; set; }
}

/// <summary>Where an <see cref="MllpAttempt"/> stands.</summary>
internal enum MllpAttemptStage
{
    /// <summary>Nothing sent yet: the whole attempt is still to run.</summary>
    NotStarted,

    /// <summary>The message is being sent (<see cref="MllpAttempt.PendingSend"/>).</summary>
    Sending,

    /// <summary>The message was sent; the node's ACK is being read.</summary>
    Receiving,

    /// <summary>The attempt failed (<see cref="MllpAttempt.Failure"/>); what follows (another node, a fresh connection) is still to decide.</summary>
    Failed,

    /// <summary>The attempt is over (<see cref="MllpAttempt.Result"/>).</summary>
    Done,

    /// <summary>
    /// The node rejected the message (AR/CR, the cluster's <c>Mllp.RetryOnReject</c>) and another node and attempt are
    /// left: its answer is dropped, its connection kept, and the message goes to another node (<see cref="MllpAttempt.Ack"/> holds the refusal).
    /// </summary>
    Rejected,
}
