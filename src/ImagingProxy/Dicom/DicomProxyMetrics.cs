using System.Diagnostics;
using System.Diagnostics.Metrics;
using ImagingProxy.Telemetry;
using Microsoft.Extensions.DependencyInjection;

namespace ImagingProxy.Dicom;

/// <summary>
/// The DICOM association proxy's instruments, on ImagingProxy's meter (<c>ImagingProxy</c>). Tag names follow the
/// OpenTelemetry conventions where one exists; <c>dicom.*</c> otherwise.
/// </summary>
public sealed class DicomProxyMetrics
{
    public const string MeterName = "ImagingProxy";

    // Association set-up through the proxy is sub-millisecond on a LAN, seconds when failing over.
    private static readonly double[] s_setupBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

    private readonly Counter<long> _associations;
    private readonly Counter<long> _associationsStarted;
    private readonly UpDownCounter<long> _active;
    private readonly Counter<long> _operations;
    private readonly Counter<long> _bytes;
    private readonly Counter<long> _failovers;
    private readonly Counter<long> _earlyConnects;
    private readonly UpDownCounter<long> _queued;
    private readonly Histogram<double> _queueWaits;
    private readonly Histogram<double> _setup;
    private readonly TagValueLimiter _aeTitles;

    /// <summary>
    /// AE titles come from the wire: they are recorded through the keyed <see cref="TagValueLimiter"/>
    /// (<c>ImagingProxy:Telemetry:AeTitles</c> / <c>MaxAeTitles</c>); without one, the first
    /// <see cref="Configuration.ProxyDefaults.MaxLabelValues"/> distinct titles pass and the rest become <c>other</c>.
    /// </summary>
    public DicomProxyMetrics(IMeterFactory meterFactory, [FromKeyedServices(ImagingProxyTelemetry.LimiterKeys.AeTitle)] TagValueLimiter? aeTitles = null)
    {
        ArgumentNullException.ThrowIfNull(meterFactory);
        _aeTitles = aeTitles ?? new TagValueLimiter(null, Configuration.ProxyDefaults.MaxLabelValues);
        var meter = meterFactory.Create(MeterName);
        _associations = meter.CreateCounter<long>("imagingproxy.dicom.associations", "{association}", "DICOM associations that ended, by end reason.");
        _associationsStarted = meter.CreateCounter<long>("imagingproxy.dicom.associations.started", "{association}",
            "A-ASSOCIATE-RQs read from clients (before routing), by listener and calling/called AE title.");
        _active = meter.CreateUpDownCounter<long>("imagingproxy.dicom.associations.active", "{association}", "DICOM associations being relayed.");
        _operations = meter.CreateCounter<long>("imagingproxy.dicom.dimse.operations", "{command}", "DIMSE commands relayed, by command field; responses also by status class (PS3.7 Annex C).");
        _bytes = meter.CreateCounter<long>("imagingproxy.dicom.bytes", "By", "Bytes relayed, by direction.");
        _failovers = meter.CreateCounter<long>("imagingproxy.dicom.failovers", "{attempt}",
            "Attempts on a destination that failed before A-ASSOCIATE-AC (connect failure or timeout, transient reject, abort, close), so the association moved on.");
        _earlyConnects = meter.CreateCounter<long>("imagingproxy.dicom.early_connects", "{connection}",
            "Node connections opened when the client connected (listener EarlyConnect), by whether the association used them.");
        _queued = meter.CreateUpDownCounter<long>("imagingproxy.dicom.associations.queued", "{association}",
            "Associations waiting for a place because every available destination of their cluster is at its MaxConcurrent (cluster QueueTimeout).");
        _queueWaits = meter.CreateHistogram(
            "imagingproxy.dicom.queue.wait.duration",
            "s",
            "Time associations spent waiting for a place (cluster QueueTimeout), by result: placed, timed_out, no_destination, abandoned (the client left or the drain deadline).",
            tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_setupBuckets });
        _setup = meter.CreateHistogram(
            "imagingproxy.dicom.association.setup.duration",
            "s",
            "From the client's whole A-ASSOCIATE-RQ to the A-ASSOCIATE-AC or -RJ sent back.",
            tags: null,
            advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = s_setupBuckets });
    }

    /// <summary>
    /// A client's A-ASSOCIATE-RQ was read and parsed; routing, drain and failover decide what follows. AE titles become
    /// labels of their own only when <paramref name="routed"/> (a route matched them): made-up titles (a port scanner's)
    /// are <c>other</c> and do not use up the places (<c>MaxAeTitles</c>) real ones need.
    /// </summary>
    public void AssociationRequested(string listener, string? callingAeTitle, string? calledAeTitle, bool routed = true)
    {
        if (_associationsStarted.Enabled)
        {
            var tags = new TagList
            {
                { "listener", listener },
                { "dicom.calling_ae_title", _aeTitles.Limit(callingAeTitle, routed) },
                { "dicom.called_ae_title", _aeTitles.Limit(calledAeTitle, routed) },
            };
            _associationsStarted.Add(1, tags);
        }
    }

    public void AssociationStarted(string listener, string route, string cluster)
        => _active.Add(1, Tags(listener, route, cluster));

    public void AssociationStopped(string listener, string route, string cluster)
        => _active.Add(-1, Tags(listener, route, cluster));

    /// <summary>An association ended; its AE titles become labels of their own only when <paramref name="routed"/> (a route matched them).</summary>
    public void AssociationEnded(string listener, string? route, string? cluster, string? destination, DicomAssociationEndReason reason, string? callingAeTitle = null, string? calledAeTitle = null, bool routed = true)
    {
        var tags = Tags(listener, route, cluster);
        tags.Add("destination", destination ?? string.Empty);
        tags.Add("end_reason", ReasonName(reason));
        tags.Add("dicom.calling_ae_title", _aeTitles.Limit(callingAeTitle, routed));
        tags.Add("dicom.called_ae_title", _aeTitles.Limit(calledAeTitle, routed));
        _associations.Add(1, tags);
    }

    public void SetupCompleted(string listener, string? cluster, TimeSpan duration, bool accepted)
    {
        if (_setup.Enabled)
        {
            var tags = new TagList { { "listener", listener }, { "cluster", cluster ?? string.Empty }, { "accepted", accepted } };
            _setup.Record(duration.TotalSeconds, tags);
        }
    }

    /// <summary>An early node connection ended up used by its association (<c>used</c>) or closed without a PDU (<c>unused</c>).</summary>
    public void EarlyConnect(string listener, string cluster, bool used)
        => _earlyConnects.Add(1, new TagList { { "listener", listener }, { "cluster", cluster }, { "outcome", used ? "used" : "unused" } });

    /// <summary>One destination failed before A-ASSOCIATE-AC; the association fails over (or gives up after the last attempt).</summary>
    /// <summary>An association began waiting for a place at a full cluster.</summary>
    public void QueueEntered(string listener, string cluster)
        => _queued.Add(1, new TagList { { "listener", listener }, { "cluster", cluster } });

    /// <summary>An association's wait for a place ended with <paramref name="result"/> after <paramref name="waited"/>.</summary>
    public void QueueLeft(string listener, string cluster, string result, TimeSpan waited)
    {
        _queued.Add(-1, new TagList { { "listener", listener }, { "cluster", cluster } });
        _queueWaits.Record(waited.TotalSeconds, new TagList { { "listener", listener }, { "cluster", cluster }, { "result", result } });
    }

    public void AttemptFailed(string listener, string cluster, string destination)
        => _failovers.Add(1, new TagList { { "listener", listener }, { "cluster", cluster }, { "destination", destination } });

    /// <summary>
    /// One DIMSE command; a response (bit 15 of the command field) also gets <c>dimse.status_class</c> from its
    /// <paramref name="status"/> (0000,0900), a request none.
    /// </summary>
    public void DimseOperation(string listener, string cluster, DimseCommandField commandField, ushort? status = null)
    {
        if (_operations.Enabled)
        {
            var tags = new TagList { { "listener", listener }, { "cluster", cluster }, { "dicom.command_field", KnownCommandFieldName(commandField) ?? OtherCommandField } };
            if (((ushort)commandField & 0x8000) != 0)
            {
                tags.Add("dimse.status_class", status is { } value ? StatusClassName(value) : StatusClass.Unknown);
            }

            _operations.Add(1, tags);
        }
    }

    public void BytesRelayed(string listener, string cluster, bool fromClient, long count)
    {
        if (_bytes.Enabled && count > 0)
        {
            var tags = new TagList { { "listener", listener }, { "cluster", cluster }, { "direction", fromClient ? "client_to_node" : "node_to_client" } };
            _bytes.Add(count, tags);
        }
    }

    /// <summary>The snake_case tag value of an end reason.</summary>
    public static string ReasonName(DicomAssociationEndReason reason) => reason switch
    {
        DicomAssociationEndReason.Released => "released",
        DicomAssociationEndReason.ClientAborted => "client_aborted",
        DicomAssociationEndReason.NodeAborted => "node_aborted",
        DicomAssociationEndReason.Idle => "idle",
        DicomAssociationEndReason.Artim => "artim",
        DicomAssociationEndReason.Malformed => "malformed",
        DicomAssociationEndReason.NoRoute => "no_route",
        DicomAssociationEndReason.NoDestination => "no_destination",
        DicomAssociationEndReason.Rejected => "rejected",
        DicomAssociationEndReason.Shutdown => "shutdown",
        DicomAssociationEndReason.ClientClosed => "client_closed",
        DicomAssociationEndReason.NodeClosed => "node_closed",
        DicomAssociationEndReason.Draining => "draining",
        DicomAssociationEndReason.ListenerLimit => "listener_limit",
        _ => "unknown",
    };

    /// <summary>
    /// The status class of a DIMSE response status (PS3.7 Annex C): <c>success</c> 0000; <c>warning</c> 0001, 0107,
    /// 0116, Bxxx; <c>cancel</c> FE00; <c>pending</c> FF00, FF01; <c>failure</c> everything else (Axxx, Cxxx, 01xx, 02xx
    /// and values the standard does not assign).
    /// </summary>
    public static string StatusClassName(ushort status) => status switch
    {
        0x0000 => StatusClass.Success,
        0x0001 or 0x0107 or 0x0116 or (>= 0xB000 and <= 0xBFFF) => StatusClass.Warning,
        0xFE00 => StatusClass.Cancel,
        0xFF00 or 0xFF01 => StatusClass.Pending,
        _ => StatusClass.Failure,
    };

    /// <summary>
    /// The <c>dicom.command_field</c> label of a command field PS3.7 does not assign: the value comes from the wire, and
    /// a label per value could fill the SDK's series limit for the metric (the association's log line keeps the hex).
    /// </summary>
    public const string OtherCommandField = "other";

    /// <summary>PS3.7 names (C-STORE-RQ ...) for the known command fields, hex otherwise.</summary>
    public static string CommandFieldName(DimseCommandField field)
        => KnownCommandFieldName(field) ?? "0x" + ((ushort)field).ToString("X4", System.Globalization.CultureInfo.InvariantCulture);

    private static string? KnownCommandFieldName(DimseCommandField field) => field switch
    {
        DimseCommandField.CStoreRequest => "C-STORE-RQ",
        DimseCommandField.CStoreResponse => "C-STORE-RSP",
        DimseCommandField.CGetRequest => "C-GET-RQ",
        DimseCommandField.CGetResponse => "C-GET-RSP",
        DimseCommandField.CFindRequest => "C-FIND-RQ",
        DimseCommandField.CFindResponse => "C-FIND-RSP",
        DimseCommandField.CMoveRequest => "C-MOVE-RQ",
        DimseCommandField.CMoveResponse => "C-MOVE-RSP",
        DimseCommandField.CEchoRequest => "C-ECHO-RQ",
        DimseCommandField.CEchoResponse => "C-ECHO-RSP",
        DimseCommandField.CCancelRequest => "C-CANCEL-RQ",
        DimseCommandField.NEventReportRequest => "N-EVENT-REPORT-RQ",
        DimseCommandField.NEventReportResponse => "N-EVENT-REPORT-RSP",
        DimseCommandField.NGetRequest => "N-GET-RQ",
        DimseCommandField.NGetResponse => "N-GET-RSP",
        DimseCommandField.NSetRequest => "N-SET-RQ",
        DimseCommandField.NSetResponse => "N-SET-RSP",
        DimseCommandField.NActionRequest => "N-ACTION-RQ",
        DimseCommandField.NActionResponse => "N-ACTION-RSP",
        DimseCommandField.NCreateRequest => "N-CREATE-RQ",
        DimseCommandField.NCreateResponse => "N-CREATE-RSP",
        DimseCommandField.NDeleteRequest => "N-DELETE-RQ",
        DimseCommandField.NDeleteResponse => "N-DELETE-RSP",
        _ => null,
    };

    /// <summary>Values of the <c>dimse.status_class</c> label.</summary>
    public static class StatusClass
    {
        public const string Success = "success";
        public const string Warning = "warning";
        public const string Cancel = "cancel";
        public const string Pending = "pending";
        public const string Failure = "failure";

        /// <summary>A response without a Status (0000,0900) element (not conformant; relayed as it is).</summary>
        public const string Unknown = "unknown";
    }

    private static TagList Tags(string listener, string? route, string? cluster)
        => new() { { "listener", listener }, { "route", route ?? string.Empty }, { "cluster", cluster ?? string.Empty } };
}
