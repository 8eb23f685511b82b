using System.Text;
using ImagingProxy.Mllp;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Tests.Mllp;

public sealed class MllpRouteTableTests
{
    private static MllpRouteTable Load(params (string Key, string Value)[] settings)
        => MllpRouteTable.Load(new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>("ImagingProxy:Mllp:" + s.Key, s.Value)))
            .Build());

    private static Hl7Header Header(string type, string receivingApplication = "PACS")
    {
        var message = Encoding.ASCII.GetBytes($"MSH|^~\\&|RIS|RAD|{receivingApplication}|HOSP|20250101120000||{type}|MSG1|P|2.5.1\r");
        Assert.Equal(Hl7ReadStatus.Success, Hl7HeaderReader.TryRead(message, 1024, out var header));
        return header;
    }

    [Fact]
    public void First_matching_route_in_configuration_order_wins()
    {
        var table = Load(
            ("Routes:0:MessageType", "ADT^A40"), ("Routes:0:Cluster", "merge"),
            ("Routes:1:MessageType", "ADT^*"), ("Routes:1:Cluster", "adt"),
            ("Routes:2:MessageType", "*"), ("Routes:2:Cluster", "all"));

        Assert.Equal("merge", table.Match(Header("ADT^A40^ADT_A39"), "hl7")?.Cluster);
        Assert.Equal("adt", table.Match(Header("ADT^A08^ADT_A01"), "hl7")?.Cluster);
        Assert.Equal("all", table.Match(Header("ORU^R01^ORU_R01"), "hl7")?.Cluster);
    }

    [Fact]
    public void A_named_catch_all_never_hides_a_specific_route()
    {
        // Named keys reach us sorted ("all" < "orders"): specificity, not key order, decides.
        var table = Load(
            ("Routes:orders:MessageType", "ORM^*"), ("Routes:orders:Cluster", "ris"),
            ("Routes:all:Cluster", "everything"),
            ("Routes:merges:MessageType", "ADT^A40"), ("Routes:merges:Cluster", "mpi"),
            ("Routes:adt:MessageType", "ADT^*"), ("Routes:adt:Cluster", "adt"));

        Assert.Equal("ris", table.Match(Header("ORM^O01"), "hl7")?.Cluster);
        Assert.Equal("mpi", table.Match(Header("ADT^A40^ADT_A39"), "hl7")?.Cluster);
        Assert.Equal("adt", table.Match(Header("ADT^A08"), "hl7")?.Cluster);
        Assert.Equal("everything", table.Match(Header("ORU^R01"), "hl7")?.Cluster);
    }

    [Fact]
    public void An_explicit_order_comes_before_specificity()
    {
        var table = Load(
            ("Routes:orders:MessageType", "ORM^*"), ("Routes:orders:Cluster", "ris"),
            ("Routes:divert:Order", "-1"), ("Routes:divert:Cluster", "standby"));

        Assert.Equal("standby", table.Match(Header("ORM^O01"), "hl7")?.Cluster);
    }

    [Fact]
    public void Numeric_route_keys_keep_number_order_past_nine()
    {
        var settings = Enumerable.Range(0, 12).SelectMany(i => new[] { ($"Routes:{i}:MessageType", i == 11 ? "*" : $"Z{i:D2}^*"), ($"Routes:{i}:Cluster", $"c{i}") }).ToArray();

        var table = Load(settings);

        Assert.Equal(Enumerable.Range(0, 12).Select(i => $"c{i}"), table.Routes.Select(r => r.Cluster));
    }

    [Fact]
    public void Route_limited_to_listeners_and_receiving_application_is_skipped_elsewhere()
    {
        var table = Load(
            ("Routes:0:MessageType", "ORM^*"), ("Routes:0:ReceivingApplication", "PACS"), ("Routes:0:Listeners:0", "ris"), ("Routes:0:Cluster", "pacs"),
            ("Routes:1:MessageType", "ORM^*"), ("Routes:1:Cluster", "other"));

        Assert.Equal("pacs", table.Match(Header("ORM^O01"), "RIS")?.Cluster);
        Assert.Equal("other", table.Match(Header("ORM^O01"), "his")?.Cluster);
        Assert.Equal("other", table.Match(Header("ORM^O01", receivingApplication: "EHR"), "ris")?.Cluster);
    }

    [Fact]
    public void No_route_matches_returns_null_and_limits_default()
    {
        var table = Load(("Routes:0:MessageType", "ADT^*"), ("Routes:0:Cluster", "adt"));

        Assert.Null(table.Match(Header("SIU^S12"), "hl7"));
        Assert.Equal(16 * 1024 * 1024, table.MaxFrameSize);
        Assert.Equal(TimeSpan.FromSeconds(30), table.AckTimeout);
    }

    [Fact]
    public void Reads_limits_from_configuration()
    {
        var table = Load(("MaxFrameSize", "4096"), ("AckTimeout", "00:00:02"));

        Assert.Equal(4096, table.MaxFrameSize);
        Assert.Equal(TimeSpan.FromSeconds(2), table.AckTimeout);
    }
}
