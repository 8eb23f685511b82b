namespace ImagingProxy.Mllp;

/// <summary>How delivering one message to a cluster ended.</summary>
internal enum MllpDeliveryOutcome
{
    /// <summary>A node acknowledged the message; its ACK is in <see cref="MllpSession.Ack"/>.</summary>
    Acknowledged,

    /// <summary>The cluster had no available destination.</summary>
    NoDestination,

    /// <summary>Every attempt failed (connect error, closed connection, ACK timeout).</summary>
    Undelivered,
}

/// <summary>Result of <see cref="MllpForwarder.DeliverAsync"/>.</summary>
internal readonly record struct MllpDelivery(MllpDeliveryOutcome Outcome, string? DestinationId, int Attempts, AcknowledgmentCode AckCode);
