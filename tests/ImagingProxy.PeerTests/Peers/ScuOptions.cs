namespace ImagingProxy.PeerTests.Peers;

/// <summary>Options shared by the dcmtk client tools (echoscu, storescu, findscu, movescu).</summary>
public sealed record ScuOptions
{
    public string Host { get; init; } = "127.0.0.1";

    /// <summary>Calling AE title (<c>-aet</c>); null keeps the tool's default.</summary>
    public string? CallingAeTitle { get; init; }

    /// <summary>Max PDU the client receives (<c>-pdu</c>); null keeps 16384.</summary>
    public int? MaxPdu { get; init; }

    /// <summary>Put before host and port, e.g. <c>-v</c>, <c>-d</c>, <c>-R</c>.</summary>
    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    /// <summary>The tool is killed and <see cref="TimeoutException"/> thrown after this.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);
}
