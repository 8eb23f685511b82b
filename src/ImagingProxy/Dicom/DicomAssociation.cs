using System.Net;

namespace ImagingProxy.Dicom;

/// <summary>What the proxy knows about one association, from accept to end: the fields of its log line.</summary>
internal sealed class DicomAssociation(string id, string listener, EndPoint? clientEndPoint, long startTimestamp)
{
    private readonly Dictionary<DimseCommandField, int> _commands = [];
    private long _lastActivity = startTimestamp;
    private long _reportedFromClient;
    private long _reportedFromNode;

    public string Id { get; } = id;

    /// <summary>Served from the accepting thread (<see cref="DicomAcceptStart"/>).</summary>
    public bool StartedAtAccept { get; init; }

    public string Listener { get; } = listener;

    public EndPoint? ClientEndPoint { get; } = clientEndPoint;

    public long StartTimestamp { get; } = startTimestamp;

    public string? CallingAeTitle { get; set; }

    public string? CalledAeTitle { get; set; }

    public string? RouteId { get; set; }

    /// <summary>A route matched the RQ's AE titles (whatever came of it: drain, limits): they may become metric labels.</summary>
    public bool Routable { get; set; }

    public string? ClusterId { get; set; }

    public string? DestinationId { get; set; }

    public int Attempts { get; set; }

    public long BytesFromClient { get; set; }

    public long BytesFromNode { get; set; }

    /// <summary>Bytes relayed in one direction that the bytes counter has not had yet (the relay reports them in steps).</summary>
    public long UnreportedBytes(bool fromClient) => fromClient ? BytesFromClient - _reportedFromClient : BytesFromNode - _reportedFromNode;

    /// <summary><see cref="UnreportedBytes"/>, now counted as reported.</summary>
    public long TakeUnreportedBytes(bool fromClient)
    {
        var unreported = UnreportedBytes(fromClient);
        if (fromClient)
        {
            _reportedFromClient = BytesFromClient;
        }
        else
        {
            _reportedFromNode = BytesFromNode;
        }

        return unreported;
    }

    /// <summary>True once an A-RELEASE-RP went through (PS3.8 §9.3.7: the release is complete).</summary>
    public bool Released { get; private set; }

    /// <summary>The relay's idle timer, told when the release went through (it then waits ARTIM for the close).</summary>
    public DicomIdleWatch? IdleWatch { get; set; }

    private int _releaseRequested;

    /// <summary>An A-RELEASE-RQ went through from the client (<paramref name="fromClient"/>) or from the node.</summary>
    public void ReleaseRequested(bool fromClient) => Interlocked.Or(ref _releaseRequested, fromClient ? 1 : 2);

    /// <summary>True once an A-RELEASE-RQ went through from the client (<paramref name="fromClient"/>) or from the node.</summary>
    public bool WasReleaseRequested(bool fromClient) => (Volatile.Read(ref _releaseRequested) & (fromClient ? 1 : 2)) != 0;

    public void MarkReleased()
    {
        Released = true;
        IdleWatch?.Released();
    }

    public bool ClientAborted { get; set; }

    public bool NodeAborted { get; set; }

    /// <summary>The source and reason of the node's A-ABORT (PS3.8 Table 9-26), when <see cref="NodeAborted"/>.</summary>
    public (AbortSource Source, AbortReason Reason) NodeAbort { get; set; }

    public DimseStreamError? ClientMalformed { get; set; }

    public DimseStreamError? NodeMalformed { get; set; }

    public long LastActivity => Volatile.Read(ref _lastActivity);

    public void Touch(long timestamp) => Volatile.Write(ref _lastActivity, timestamp);

    public void CountCommand(DimseCommandField field)
    {
        lock (_commands)
        {
            _commands[field] = _commands.GetValueOrDefault(field) + 1;
        }
    }

    /// <summary>"C-STORE-RQ=3 C-STORE-RSP=3", or "none".</summary>
    public string DescribeCommands()
    {
        lock (_commands)
        {
            return _commands.Count == 0
                ? "none"
                : string.Join(' ', _commands.OrderBy(c => (ushort)c.Key).Select(c => $"{DicomProxyMetrics.CommandFieldName(c.Key)}={c.Value}"));
        }
    }

    public int CommandCount(DimseCommandField field)
    {
        lock (_commands)
        {
            return _commands.GetValueOrDefault(field);
        }
    }
}
