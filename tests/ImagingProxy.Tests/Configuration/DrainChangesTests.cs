using ImagingProxy.Configuration;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Tests.Configuration;

public class DrainChangesTests
{
    private const string A = "ReverseProxy:Clusters:pacs:Destinations:a";
    private const string B = "ReverseProxy:Clusters:pacs:Destinations:b";

    private static Dictionary<string, string?> Config(params (string Key, string Value)[] pairs)
    {
        var data = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase)
        {
            [A + ":Address"] = "tcp://127.0.0.1:104",
            [B + ":Address"] = "tcp://127.0.0.1:105",
        };
        foreach (var (key, value) in pairs)
        {
            data[key] = value;
        }

        return data;
    }

    [Fact]
    public void A_destination_turning_drain_on_or_off_is_named_once()
    {
        var none = Config();
        var drainA = Config((A + ":Metadata:Drain", "true"));
        var drainBoth = Config((A + ":Metadata:Drain", "True"), (B + ":Metadata:Drain", "true"));
        var explicitOff = Config((A + ":Metadata:Drain", "false"), (B + ":Metadata:Drain", "true"));

        Assert.Equal(("pacs/a", ""), Lists(ConfigurationGate.DrainChanges(none, drainA)));
        Assert.Equal(("pacs/b", ""), Lists(ConfigurationGate.DrainChanges(drainA, drainBoth)));
        Assert.Equal(("", "pacs/a"), Lists(ConfigurationGate.DrainChanges(drainBoth, explicitOff)));
        Assert.Equal(("", "pacs/a pacs/b"), Lists(ConfigurationGate.DrainChanges(drainBoth, none)));
        Assert.Equal(("", ""), Lists(ConfigurationGate.DrainChanges(drainA, drainA)));
    }

    [Fact]
    public void A_drained_destination_that_is_removed_is_not_back_in_rotation()
    {
        var drainA = Config((A + ":Metadata:Drain", "true"));
        var withoutA = Config();
        withoutA.Remove(A + ":Address");

        Assert.Equal(("", ""), Lists(ConfigurationGate.DrainChanges(drainA, withoutA)));
    }

    private static (string Drained, string Undrained) Lists((List<string> Drained, List<string> Undrained) changes)
        => (string.Join(' ', changes.Drained), string.Join(' ', changes.Undrained));

    [Fact]
    public async Task Destinations_drained_when_the_proxy_starts_are_named_in_its_log()
    {
        var clusters = """
            { "web": { "Destinations": { "a": { "Address": "http://127.0.0.1:9/", "Metadata": { "Drain": "true" } }, "b": { "Address": "http://127.0.0.1:9/" } } } }
            """;
        await using var proxy = await TestProxy.StartAsync(TestProxy.Config(clusters, "{}"), builder => builder.Logging.AddFakeLogging());

        var logged = Assert.Single(proxy.Services.GetFakeLogCollector().GetSnapshot(), r => r.Id.Id == 104);
        Assert.StartsWith("Destination(s) web/a draining (metadata Drain)", logged.Message, StringComparison.Ordinal);
    }
}
