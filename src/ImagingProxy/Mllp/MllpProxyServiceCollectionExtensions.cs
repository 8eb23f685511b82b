using ImagingProxy.Balancing;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using ImagingProxy.Telemetry;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace ImagingProxy.Mllp;

/// <summary>Registers the HL7 v2 / MLLP proxy.</summary>
public static class MllpProxyServiceCollectionExtensions
{
    /// <summary>
    /// Adds the MLLP connection handler's services and replaces the plain TCP-connect prober for MLLP clusters with
    /// <see cref="MllpProber"/> (Connect by default, Message when the cluster says so).
    /// </summary>
    public static IServiceCollection AddMllpProxy(this IServiceCollection services)
    {
        services.TryAddSingleton(TimeProvider.System);
        // AddImagingProxyTelemetry registers the configured limiter; this default only serves hosts without it.
        services.TryAddKeyedSingleton(ImagingProxyTelemetry.LimiterKeys.MessageType, new TagValueLimiter(null, ProxyDefaults.MaxLabelValues));
        services.AddSingleton<MllpProxyConfiguration>();
        services.AddSingleton(sp => new MllpNodePool(sp.GetRequiredService<TimeProvider>()));
        services.AddSingleton<MllpProxyMetrics>();
        services.TryAddSingleton<NodeTls>();
        services.TryAddSingleton<Hosting.ConnectionDrain>(); // the host's drain deadline, shared with the DICOM side
        services.TryAddSingleton<DestinationHealthTracker>();
        services.TryAddSingleton<DestinationWeights>();
        services.TryAddSingleton<WeightedPicker>();
        services.TryAddSingleton<DestinationLimits>();
        services.AddSingleton<MllpForwarder>();
        services.AddSingleton<MllpConnectionHandler>();

        foreach (var descriptor in services.Where(d => d.ServiceType == typeof(IDestinationProber) && d.ImplementationType == typeof(TcpConnectProber)).ToList())
        {
            services.Remove(descriptor);
        }

        services.AddSingleton<IDestinationProber, MllpProber>();
        return services;
    }
}
