namespace ImagingProxy.PeerTests.Peers;

public sealed record StoreScpOptions
{
    public string AeTitle { get; init; } = "STORESCP";

    /// <summary><c>-od</c>; null: a temp directory owned (and deleted) by the <see cref="StoreScp"/>.</summary>
    public string? OutputDirectory { get; init; }

    /// <summary><c>+B</c>: write exactly the bytes that arrived.</summary>
    public bool BitPreserving { get; init; } = true;

    /// <summary><c>-pdu</c>, 4096–131072; null keeps 16384.</summary>
    public int? MaxPdu { get; init; }

    /// <summary><c>--fork</c>: one child process per association; without it one association at a time.</summary>
    public bool Fork { get; init; }

    public IReadOnlyList<string> ExtraArguments { get; init; } = [];

    public TimeSpan StartTimeout { get; init; } = TimeSpan.FromSeconds(15);
}
