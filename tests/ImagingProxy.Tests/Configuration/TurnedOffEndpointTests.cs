using ImagingProxy.Configuration;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Tests.Configuration;

public class TurnedOffEndpointTests
{
    private static Dictionary<string, string?> Snapshot(string? viewersEnabled)
    {
        var data = new Dictionary<string, string?>
        {
            ["Kestrel:Endpoints:Viewers:Url"] = "https://0.0.0.0:443",
            ["Kestrel:Endpoints:Viewers:Certificate:Path"] = "tls.crt",
            ["Kestrel:Endpoints:Admin:Url"] = "http://0.0.0.0:9901",
        };
        if (viewersEnabled is not null)
        {
            data["Kestrel:Endpoints:Viewers:Enabled"] = viewersEnabled;
        }

        return ConfigurationGate.Snapshot(new ConfigurationBuilder().AddInMemoryCollection(data).Build());
    }

    [Fact]
    public void A_turned_off_endpoint_is_left_out_whole()
    {
        var snapshot = Snapshot("false");

        Assert.Equal(["Kestrel:Endpoints:Admin:Url"], snapshot.Keys.Order(StringComparer.Ordinal));
    }

    [Fact]
    public void Stating_enabled_true_is_no_change_kestrel_would_rebind_for()
    {
        var absent = Snapshot(null);
        var stated = Snapshot("True");

        Assert.True(ConfigurationGate.SameAs(absent, stated));
        Assert.Empty(ConfigurationGate.ChangedEndpoints(absent, stated));
    }

    [Fact]
    public void A_value_that_is_not_a_boolean_stays_for_the_validator_to_name()
        => Assert.Equal("maybe", Snapshot("maybe")["Kestrel:Endpoints:Viewers:Enabled"]);
}
