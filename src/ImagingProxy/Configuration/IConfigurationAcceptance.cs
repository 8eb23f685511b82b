namespace ImagingProxy.Configuration;

/// <summary>
/// A reader of the gated configuration that checks more than <see cref="ConfigurationValidator"/> does and can still
/// refuse a change (YARP validates its routes and clusters itself). The <see cref="ConfigurationGate"/> calls
/// <see cref="Begin"/> before it applies a change and <see cref="End"/> after; a refused change is rolled back whole.
/// </summary>
public interface IConfigurationAcceptance
{
    /// <summary>A change is about to be applied.</summary>
    void Begin();

    /// <summary>The problems this reader found with the change just applied; empty when it took it.</summary>
    IReadOnlyList<string> End();
}
