using ImagingProxy.Configuration;
using ImagingProxy.Dicom;
using ImagingProxy.Mllp;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging.Abstractions;

namespace ImagingProxy.Tests.Configuration;

/// <summary>
/// What associations and messages read while a reload is applied: the DICOM and MLLP settings follow the configuration
/// the gate accepted, never one a reader (YARP) is still judging or refused.
/// </summary>
public sealed class AcceptedConfigurationTests
{
    [Fact]
    public void A_change_a_reader_refuses_is_never_seen_by_associations_or_messages_while_it_is_judged()
    {
        var raw = new SwappableSource(Config(dicomCluster: "pacs-a", mllpCluster: "ris-a"));
        var gate = new ConfigurationGate(new ConfigurationBuilder().Add(raw).Build());
        gate.ApplyInitial();
        var dicom = new DicomProxySettings(gate);
        var mllp = new MllpProxyConfiguration(gate);
        Assert.Equal("pacs-a", dicom.Current.Routes["pacs"].Cluster);
        Assert.Equal("ris-a", mllp.Current.Routes[0].Cluster);

        // YARP's verdict comes while the change is in the gated configuration; an association or message that arrives
        // meanwhile (here: read from the reader's End) routes by what it reads then.
        var reader = new RefusingReader(() => (dicom.Current.Routes["pacs"].Cluster!, mllp.Current.Routes[0].Cluster));
        gate.AddAcceptance(reader);
        gate.StartWatching(NullLogger.Instance);
        raw.Provider.Swap(Config(dicomCluster: "pacs-b", mllpCluster: "ris-b"));

        Assert.Equal(1, gate.Generation);
        Assert.Equal(["refused by the test reader"], gate.LastRejection);
        Assert.Equal(("pacs-a", "ris-a"), reader.SeenWhileJudged);
        Assert.Equal("pacs-a", dicom.Current.Routes["pacs"].Cluster);
        Assert.Equal("ris-a", mllp.Current.Routes[0].Cluster);
    }

    [Fact]
    public void A_change_every_reader_takes_reaches_associations_and_messages()
    {
        var raw = new SwappableSource(Config(dicomCluster: "pacs-a", mllpCluster: "ris-a"));
        var gate = new ConfigurationGate(new ConfigurationBuilder().Add(raw).Build());
        gate.ApplyInitial();
        var dicom = new DicomProxySettings(gate);
        var mllp = new MllpProxyConfiguration(gate);
        Assert.Equal("pacs-a", dicom.Current.Routes["pacs"].Cluster);
        Assert.Equal("ris-a", mllp.Current.Routes[0].Cluster);
        gate.StartWatching(NullLogger.Instance);

        raw.Provider.Swap(Config(dicomCluster: "pacs-b", mllpCluster: "ris-b"));

        Assert.Equal(2, gate.Generation);
        Assert.Equal("pacs-b", dicom.Current.Routes["pacs"].Cluster);
        Assert.Equal("pacs-b", dicom.OrderedRoutes(dicom.Current).Single().Value.Cluster);
        Assert.Equal("ris-b", mllp.Current.Routes[0].Cluster);
    }

    private static Dictionary<string, string?> Config(string dicomCluster, string mllpCluster)
    {
        var values = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            ["ImagingProxy:Dicom:Routes:pacs:CalledAeTitle"] = "PACS",
            ["ImagingProxy:Dicom:Routes:pacs:Cluster"] = dicomCluster,
            ["ImagingProxy:Mllp:Routes:0:MessageType"] = "*",
            ["ImagingProxy:Mllp:Routes:0:Cluster"] = mllpCluster,
        };
        foreach (var (cluster, protocol, port) in new[] { ("pacs-a", "Dicom", 1), ("pacs-b", "Dicom", 2), ("ris-a", "Mllp", 3), ("ris-b", "Mllp", 4) })
        {
            values[$"ReverseProxy:Clusters:{cluster}:Metadata:Protocol"] = protocol;
            values[$"ReverseProxy:Clusters:{cluster}:Destinations:d:Address"] = $"tcp://127.0.0.1:{port}";
        }

        return values;
    }

    /// <summary>A reader that refuses every change, noting what the DICOM and MLLP settings give while it judges one.</summary>
    private sealed class RefusingReader(Func<(string Dicom, string Mllp)> read) : IConfigurationAcceptance
    {
        public (string Dicom, string Mllp)? SeenWhileJudged { get; private set; }

        public void Begin()
        {
        }

        public IReadOnlyList<string> End()
        {
            SeenWhileJudged ??= read();
            return ["refused by the test reader"];
        }
    }

    /// <summary>A raw configuration source whose keys a test replaces, signalling a reload as a file edit does.</summary>
    private sealed class SwappableSource(Dictionary<string, string?> initial) : IConfigurationSource
    {
        public SwappableProvider Provider { get; } = new(initial);

        public IConfigurationProvider Build(IConfigurationBuilder builder) => Provider;
    }

    private sealed class SwappableProvider : ConfigurationProvider
    {
        public SwappableProvider(Dictionary<string, string?> initial) => Data = new Dictionary<string, string?>(initial, StringComparer.OrdinalIgnoreCase);

        public void Swap(Dictionary<string, string?> data)
        {
            Data = new Dictionary<string, string?>(data, StringComparer.OrdinalIgnoreCase);
            OnReload();
        }
    }
}
