namespace ImagingProxy.Mllp;

/// <summary>How delivering one message to a cluster ended.</summary>
internal enum MllpDeliveryOutcome
{
    /// <summary>A node acknowledged the message; its ACK is in <see cref="MllpSession.Ack"/>.</summary>
    Acknowledged,

    /// <summary>The cluster had no available destination.</summary>
    NoDestination,

    /// <summary>Every attempt failed (connect error, closed connection, ACK timeout) or the delivery budget ran out.</summary>
    Undelivered,

    /// <summary>The inbound connection was aborted (drain deadline) while the message was in flight: nothing to answer.</summary>
    Aborted,

    /// <summary>An attempt failed in ImagingProxy itself (logged, event 4104): ImagingProxy answers AR/CR.</summary>
    Faulted,

    /// <summary>The message (MSH-15 <c>NE</c>) was sent to a node; no acknowledgment is awaited or answered.</summary>
    SentWithoutAck,
}

/// <summary>Result of <see cref="MllpForwarder.FinishAsync"/>.</summary>
internal readonly record struct MllpDelivery(MllpDeliveryOutcome Outcome, string? DestinationId, int Attempts, AcknowledgmentCode AckCode);

/// <summary>What one attempt (one node) gave: the retry pipeline retries <see cref="Failed"/> only.</summary>
internal enum MllpAttemptOutcome
{
    Acknowledged,

    /// <summary>This node failed; another may take the message.</summary>
    Failed,

    /// <summary>No node left to try, or no time left in the delivery budget: stop.</summary>
    Exhausted,

    /// <summary>The attempt threw, a fault of ImagingProxy's own (logged): the delivery stops, not retried.</summary>
    Faulted,

    /// <summary>The message went out and the sender asked for no acknowledgment (MSH-15 <c>NE</c>): nothing to wait for.</summary>
    Sent,
}

/// <summary>Result of one attempt inside the retry pipeline.</summary>
internal readonly record struct MllpAttemptResult(MllpAttemptOutcome Outcome, string? DestinationId, AcknowledgmentCode AckCode);
