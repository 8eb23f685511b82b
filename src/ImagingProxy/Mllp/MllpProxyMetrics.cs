using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using ImagingProxy.Telemetry;
using Microsoft.Extensions.DependencyInjection;

namespace ImagingProxy.Mllp;

/// <summary>The HL7/MLLP proxy's instruments (meter <c>ImagingProxy</c>), in the style of Kestrel's <c>KestrelMetrics</c>.</summary>
/// <remarks>
/// The <c>message_type</c> label (<c>code^trigger</c> from MSH-9) comes from the wire, so it goes through the keyed
/// <see cref="TagValueLimiter"/> (<see cref="ImagingProxyTelemetry.LimiterKeys.MessageType"/>); the label of a type seen
/// before is found from the header bytes without building a string.
/// </remarks>
internal sealed class MllpProxyMetrics
{
    private const int MaxCachedMessageTypes = 512;
    private const int MaxMessageTypeLength = 64;

    private static readonly double[] s_durationBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private readonly Counter<long> _messages;
    private readonly Histogram<double> _ackDuration;
    private readonly Counter<long> _retries;
    private readonly Counter<long> _unsolicited;
    private readonly Counter<long> _naks;
    private readonly Counter<long> _framesRejected;
    private readonly UpDownCounter<long> _connections;
    private readonly Counter<long> _connectionsClosed;
    private readonly TagValueLimiter _messageTypes;
    private readonly ConcurrentDictionary<string, string> _messageTypeLabels = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, string>.AlternateLookup<ReadOnlySpan<char>> _messageTypeLookup;

    public MllpProxyMetrics(IMeterFactory meterFactory, [FromKeyedServices(ImagingProxyTelemetry.LimiterKeys.MessageType)] TagValueLimiter messageTypes)
    {
        _messageTypes = messageTypes;
        _messageTypeLookup = _messageTypeLabels.GetAlternateLookup<ReadOnlySpan<char>>();
        var meter = meterFactory.Create(ImagingProxyTelemetry.MeterName);
        _messages = meter.CreateCounter<long>("imagingproxy.hl7.messages", "{message}", "HL7 messages relayed with a node's acknowledgement, or sent without one when MSH-15 is NE (ack_code no_ack_requested).");
        _ackDuration = meter.CreateHistogram("imagingproxy.hl7.ack.duration", "s", "Time from a message's arrival to the acknowledgement sent back.", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_durationBuckets });
        _retries = meter.CreateCounter<long>("imagingproxy.hl7.retries", "{attempt}", "Messages sent again to another node after a failure (or a refusal, Mllp.RetryOnReject), by the destination that failed or refused.");
        _unsolicited = meter.CreateCounter<long>("imagingproxy.hl7.node_frames.dropped", "{frame}", "Frames a node sent that answered no message in flight (sent between messages, or a late second answer to the previous one), dropped, by cluster and destination.");
        _naks = meter.CreateCounter<long>("imagingproxy.hl7.naks", "{message}", "Negative acknowledgements written by ImagingProxy itself.");
        _framesRejected = meter.CreateCounter<long>("imagingproxy.hl7.frames.rejected", "{frame}", "Inbound bytes or frames not forwarded.");
        _connections = meter.CreateUpDownCounter<long>("imagingproxy.hl7.connections.active", "{connection}", "Inbound MLLP connections open now.");
        _connectionsClosed = meter.CreateCounter<long>("imagingproxy.hl7.connections.closed", "{connection}", "Inbound MLLP connections closed, by reason (drain_deadline: closed with a message unfinished).");
    }

    public void Relayed(string listener, string route, string cluster, string? destination, string messageType, AcknowledgmentCode code, TimeSpan elapsed)
    {
        var tags = MessageTags(listener, route, cluster, destination, messageType, AckCodeName(code));
        _messages.Add(1, tags);
        _ackDuration.Record(elapsed.TotalSeconds, tags);
    }

    /// <summary>A message whose MSH-15 is NE went to <paramref name="destination"/>; no acknowledgment (and no ACK duration).</summary>
    public void SentWithoutAck(string listener, string route, string cluster, string? destination, string messageType)
        => _messages.Add(1, MessageTags(listener, route, cluster, destination, messageType, NoAckRequested));

    private static TagList MessageTags(string listener, string route, string cluster, string? destination, string messageType, string ackCode) => new()
    {
        { "listener", listener },
        { "route", route },
        { "cluster", cluster },
        { "destination", destination },
        { "message_type", messageType },
        { "ack_code", ackCode },
    };

    /// <summary>The <c>ack_code</c> label of a message sent without an acknowledgment (MSH-15 NE).</summary>
    public const string NoAckRequested = "no_ack_requested";

    /// <summary>A message is sent again after <paramref name="failedDestination"/> (the node of the previous attempt) failed.</summary>
    public void Retried(string cluster, string failedDestination)
        => _retries.Add(1, new TagList { { "cluster", cluster }, { "destination", failedDestination } });

    /// <summary><paramref name="count"/> frames from <paramref name="destination"/> that answered no message in flight were dropped.</summary>
    public void NodeFramesDropped(string cluster, string destination, int count)
        => _unsolicited.Add(count, new TagList { { "cluster", cluster }, { "destination", destination } });

    public void Nak(string listener, MllpRejectReason reason, TimeSpan elapsed)
    {
        var tags = new TagList { { "listener", listener }, { "reason", MllpRejectReasons.Name(reason) } };
        _naks.Add(1, tags);
        _ackDuration.Record(elapsed.TotalSeconds, new TagList { { "listener", listener }, { "ack_code", "nak" } });
    }

    public void FrameRejected(string listener, MllpRejectReason reason)
        => _framesRejected.Add(1, new TagList { { "listener", listener }, { "reason", MllpRejectReasons.Name(reason) } });

    public void ConnectionOpened(string listener) => _connections.Add(1, new KeyValuePair<string, object?>("listener", listener));

    public void ConnectionClosed(string listener, MllpSessionEnd reason)
    {
        _connections.Add(-1, new KeyValuePair<string, object?>("listener", listener));
        _connectionsClosed.Add(1, new TagList { { "listener", listener }, { "reason", MllpSessionEnds.Name(reason) } });
    }

    /// <summary>
    /// The bounded <c>message_type</c> label (<c>ORM^O01</c>, <c>ADT</c>, <c>other</c>) of a message. A type not seen
    /// before takes a place of its own only when <paramref name="routed"/> (a route matched the message): types no route
    /// takes (a misconfigured sender's, a scanner's) are <c>other</c> and leave the places (<c>MaxMessageTypes</c>) to
    /// routed ones.
    /// </summary>
    public string MessageTypeLabel(in Hl7Header header, bool routed = true)
    {
        var code = header.MessageCode.Span;
        var trigger = header.TriggerEvent.Span;
        var length = code.Length + (trigger.IsEmpty ? 0 : 1 + trigger.Length);
        if (length == 0)
        {
            return _messageTypes.Limit(null);
        }

        if (length > MaxMessageTypeLength)
        {
            return TagValueLimiter.Other;
        }

        Span<char> chars = stackalloc char[MaxMessageTypeLength];
        for (var i = 0; i < code.Length; i++)
        {
            chars[i] = (char)code[i];
        }

        if (!trigger.IsEmpty)
        {
            chars[code.Length] = '^';
            for (var i = 0; i < trigger.Length; i++)
            {
                chars[code.Length + 1 + i] = (char)trigger[i];
            }
        }

        var key = chars[..length];
        if (_messageTypeLookup.TryGetValue(key, out var label))
        {
            return label;
        }

        var text = key.ToString();
        label = _messageTypes.Limit(text, routed);
        if (!routed && ReferenceEquals(label, TagValueLimiter.Other))
        {
            return label; // not cached: the same type routed later (after a reload) may still take a place
        }

        if (_messageTypeLabels.Count < MaxCachedMessageTypes)
        {
            _messageTypeLabels.TryAdd(text, label);
        }

        return label;
    }

    internal static string AckCodeName(AcknowledgmentCode code) => code switch
    {
        AcknowledgmentCode.ApplicationAccept => "AA",
        AcknowledgmentCode.ApplicationError => "AE",
        AcknowledgmentCode.ApplicationReject => "AR",
        AcknowledgmentCode.CommitAccept => "CA",
        AcknowledgmentCode.CommitError => "CE",
        AcknowledgmentCode.CommitReject => "CR",
        _ => "unknown",
    };
}
