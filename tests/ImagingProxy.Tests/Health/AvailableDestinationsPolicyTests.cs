using ImagingProxy.Health;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;
using static ImagingProxy.Tests.Health.HealthFixtures;

namespace ImagingProxy.Tests.Health;

public sealed class AvailableDestinationsPolicyTests
{
    private static readonly HealthyAndUnknownPolicy s_healthyAndUnknown = new();
    private static readonly HealthyOrPanicPolicy s_healthyOrPanic = new();

    [Fact]
    public void Names_are_imagingproxy_names()
    {
        Assert.Equal(AvailableDestinationsPolicies.HealthyAndUnknown, s_healthyAndUnknown.Name);
        Assert.Equal(AvailableDestinationsPolicies.HealthyOrPanic, s_healthyOrPanic.Name);
    }

    [Fact]
    public void HealthyAndUnknown_drops_actively_unhealthy_destinations_when_the_flag_is_set()
    {
        var config = Cluster("c", activeFlag: true).Model.Config;
        DestinationState[] all = [Destination("up", DestinationHealth.Healthy), Destination("new"), Destination("down", DestinationHealth.Unhealthy)];

        var available = s_healthyAndUnknown.GetAvailalableDestinations(config, all);

        Assert.Equal(["up", "new"], available.Select(d => d.DestinationId));
    }

    [Fact]
    public void Active_health_is_ignored_without_the_flag()
    {
        // YARP's own monitor is off (ImagingProxy probes); without ImagingProxy's flag an Unhealthy value is stale.
        var config = Cluster("c", activeFlag: false).Model.Config;
        DestinationState[] all = [Destination("a", DestinationHealth.Unhealthy), Destination("b", DestinationHealth.Unhealthy)];

        Assert.Equal(2, s_healthyAndUnknown.GetAvailalableDestinations(config, all).Count);
        Assert.Equal(2, s_healthyOrPanic.GetAvailalableDestinations(config, all).Count);
    }

    [Fact]
    public void Passive_health_counts_only_when_passive_checks_are_enabled()
    {
        DestinationState[] all = [Destination("a", passive: DestinationHealth.Unhealthy), Destination("b", DestinationHealth.Healthy, DestinationHealth.Healthy)];

        Assert.Equal(["b"], s_healthyAndUnknown.GetAvailalableDestinations(Cluster("c", activeFlag: false, passive: true).Model.Config, all).Select(d => d.DestinationId));
        Assert.Equal(2, s_healthyAndUnknown.GetAvailalableDestinations(Cluster("c", activeFlag: false, passive: false).Model.Config, all).Count);
    }

    [Fact]
    public void HealthyAndUnknown_returns_nothing_when_every_destination_is_down()
    {
        var config = Cluster("c", activeFlag: true).Model.Config;
        DestinationState[] all = [Destination("a", DestinationHealth.Unhealthy), Destination("b", DestinationHealth.Unhealthy)];

        Assert.Empty(s_healthyAndUnknown.GetAvailalableDestinations(config, all));
    }

    [Fact]
    public void HealthyOrPanic_filters_like_HealthyAndUnknown_while_something_is_up()
    {
        var config = Cluster("c", activeFlag: true).Model.Config;
        DestinationState[] all = [Destination("a", DestinationHealth.Unhealthy), Destination("b", DestinationHealth.Healthy)];

        Assert.Equal(["b"], s_healthyOrPanic.GetAvailalableDestinations(config, all).Select(d => d.DestinationId));
    }

    [Fact]
    public void HealthyOrPanic_panics_to_all_destinations_when_every_one_is_down()
    {
        var config = Cluster("c", activeFlag: true).Model.Config;
        DestinationState[] all = [Destination("a", DestinationHealth.Unhealthy), Destination("b", DestinationHealth.Unhealthy)];

        Assert.Equal(["a", "b"], s_healthyOrPanic.GetAvailalableDestinations(config, all).Select(d => d.DestinationId));
    }

    [Fact]
    public void A_draining_destination_is_never_available_not_even_in_panic()
    {
        var config = Cluster("c", activeFlag: true).Model.Config;
        DestinationState[] some = [Draining("a", DestinationHealth.Healthy), Destination("b", DestinationHealth.Healthy), Draining("c", DestinationHealth.Unknown)];
        DestinationState[] down = [Draining("a", DestinationHealth.Healthy), Destination("b", DestinationHealth.Unhealthy), Destination("c", DestinationHealth.Unhealthy)];
        DestinationState[] drained = [Draining("a", DestinationHealth.Healthy), Draining("b", DestinationHealth.Healthy)];

        Assert.Equal(["b"], s_healthyAndUnknown.GetAvailalableDestinations(config, some).Select(d => d.DestinationId));
        Assert.Equal(["b"], s_healthyOrPanic.GetAvailalableDestinations(config, some).Select(d => d.DestinationId));
        Assert.Equal(["b", "c"], s_healthyOrPanic.GetAvailalableDestinations(config, down).Select(d => d.DestinationId));
        Assert.Empty(s_healthyAndUnknown.GetAvailalableDestinations(config, drained));
        Assert.Empty(s_healthyOrPanic.GetAvailalableDestinations(config, drained));
    }

    private static DestinationState Draining(string id, DestinationHealth active)
    {
        var destination = new DestinationState(id, new DestinationModel(new DestinationConfig
        {
            Address = "http://127.0.0.1:9/",
            Metadata = new Dictionary<string, string> { ["Drain"] = "True" },
        }));
        destination.Health.Active = active;
        return destination;
    }

    private static DestinationState Backup(string id, DestinationHealth active = DestinationHealth.Unknown)
    {
        var destination = new DestinationState(id, new DestinationModel(new DestinationConfig
        {
            Address = "http://127.0.0.1:9/",
            Metadata = new Dictionary<string, string> { ["Backup"] = "true" },
        }));
        destination.Health.Active = active;
        return destination;
    }

    [Fact]
    public void Backups_are_kept_out_while_a_primary_is_available_and_taken_when_none_is()
    {
        var config = Cluster("c", activeFlag: true).Model.Config;
        var dr = Backup("dr", DestinationHealth.Healthy);

        Assert.Equal(["a"], s_healthyAndUnknown.GetAvailalableDestinations(config, [Destination("a", DestinationHealth.Healthy), Destination("b", DestinationHealth.Unhealthy), dr]).Select(d => d.DestinationId));
        Assert.Equal(["new"], s_healthyAndUnknown.GetAvailalableDestinations(config, [Destination("new"), dr]).Select(d => d.DestinationId)); // not yet probed counts as available
        Assert.Equal(["dr"], s_healthyAndUnknown.GetAvailalableDestinations(config, [Destination("a", DestinationHealth.Unhealthy), dr]).Select(d => d.DestinationId));
        Assert.Equal(["dr"], s_healthyOrPanic.GetAvailalableDestinations(config, [Destination("a", DestinationHealth.Unhealthy), dr]).Select(d => d.DestinationId));

        // A backup that is down too: nothing (HealthyAndUnknown), or panic to every destination.
        var down = Backup("dr", DestinationHealth.Unhealthy);
        Assert.Empty(s_healthyAndUnknown.GetAvailalableDestinations(config, [Destination("a", DestinationHealth.Unhealthy), down]));
        Assert.Equal(2, s_healthyOrPanic.GetAvailalableDestinations(config, [Destination("a", DestinationHealth.Unhealthy), down]).Count);
    }

    [Fact]
    public void A_drained_primary_hands_over_to_the_backups()
    {
        var config = Cluster("c", activeFlag: true).Model.Config;
        var drained = new DestinationState("a", new DestinationModel(new DestinationConfig
        {
            Address = "http://127.0.0.1:9/",
            Metadata = new Dictionary<string, string> { ["Drain"] = "true" },
        }));

        Assert.Equal(["dr1", "dr2"], s_healthyAndUnknown.GetAvailalableDestinations(config, [drained, Backup("dr1"), Backup("dr2")]).Select(d => d.DestinationId));
    }
}
