namespace ImagingProxy.PeerTests.Peers;

public sealed record DcmQrScpOptions
{
    public string AeTitle { get; init; } = "DCMQRSCP";

    /// <summary>C-MOVE destinations, written to the config's HostTable and allowed as peers.</summary>
    public IReadOnlyList<DicomNode> MoveDestinations { get; init; } = [];

    /// <summary><c>--single-process</c>; false (dcmqrscp's default) forks one child per association.</summary>
    public bool SingleProcess { get; init; }

    /// <summary>MaxPDUSize in the config; 16384 by default.</summary>
    public int MaxPdu { get; init; } = 16384;

    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(15);
}
