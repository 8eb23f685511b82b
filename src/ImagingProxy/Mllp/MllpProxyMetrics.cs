using System.Diagnostics;
using System.Diagnostics.Metrics;
using ImagingProxy.Telemetry;

namespace ImagingProxy.Mllp;

/// <summary>The HL7/MLLP proxy's instruments (meter <c>ImagingProxy</c>), in the style of Kestrel's <c>KestrelMetrics</c>.</summary>
internal sealed class MllpProxyMetrics
{
    private static readonly double[] s_durationBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private readonly Counter<long> _messages;
    private readonly Histogram<double> _ackDuration;
    private readonly Counter<long> _retries;
    private readonly Counter<long> _naks;
    private readonly Counter<long> _framesRejected;
    private readonly UpDownCounter<long> _connections;

    public MllpProxyMetrics(IMeterFactory meterFactory)
    {
        var meter = meterFactory.Create(ImagingProxyTelemetry.MeterName);
        _messages = meter.CreateCounter<long>("imagingproxy.hl7.messages", "{message}", "HL7 messages relayed with a node's acknowledgement.");
        _ackDuration = meter.CreateHistogram("imagingproxy.hl7.ack.duration", "s", "Time from a message's arrival to the acknowledgement sent back.", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_durationBuckets });
        _retries = meter.CreateCounter<long>("imagingproxy.hl7.retries", "{attempt}", "Messages sent again to another node after a failure.");
        _naks = meter.CreateCounter<long>("imagingproxy.hl7.naks", "{message}", "Negative acknowledgements written by ImagingProxy itself.");
        _framesRejected = meter.CreateCounter<long>("imagingproxy.hl7.frames.rejected", "{frame}", "Inbound bytes or frames not forwarded.");
        _connections = meter.CreateUpDownCounter<long>("imagingproxy.hl7.connections.active", "{connection}", "Inbound MLLP connections open now.");
    }

    public void Relayed(string listener, string route, string cluster, string? destination, string messageType, AcknowledgmentCode code, TimeSpan elapsed)
    {
        var tags = new TagList
        {
            { "listener", listener },
            { "route", route },
            { "cluster", cluster },
            { "destination", destination },
            { "message_type", messageType },
            { "ack_code", AckCodeName(code) },
        };
        _messages.Add(1, tags);
        _ackDuration.Record(elapsed.TotalSeconds, tags);
    }

    public void Retried(string cluster) => _retries.Add(1, new KeyValuePair<string, object?>("cluster", cluster));

    public void Nak(string listener, MllpRejectReason reason, TimeSpan elapsed)
    {
        var tags = new TagList { { "listener", listener }, { "reason", MllpRejectReasons.Name(reason) } };
        _naks.Add(1, tags);
        _ackDuration.Record(elapsed.TotalSeconds, new TagList { { "listener", listener }, { "ack_code", "nak" } });
    }

    public void FrameRejected(string listener, MllpRejectReason reason)
        => _framesRejected.Add(1, new TagList { { "listener", listener }, { "reason", MllpRejectReasons.Name(reason) } });

    public void ConnectionOpened(string listener) => _connections.Add(1, new KeyValuePair<string, object?>("listener", listener));

    public void ConnectionClosed(string listener) => _connections.Add(-1, new KeyValuePair<string, object?>("listener", listener));

    private static string AckCodeName(AcknowledgmentCode code) => code switch
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
