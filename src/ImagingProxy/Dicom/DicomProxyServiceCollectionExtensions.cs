using ImagingProxy.Balancing;
using ImagingProxy.Configuration;
using ImagingProxy.Health;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace ImagingProxy.Dicom;

/// <summary>Registers the DICOM association proxy: connection handler, destination selection, metrics and the C-ECHO prober.</summary>
public static class DicomProxyServiceCollectionExtensions
{
    public static IServiceCollection AddDicomProxy(this IServiceCollection services)
    {
        ArgumentNullException.ThrowIfNull(services);
        services.TryAddSingleton(TimeProvider.System);
        services.AddMetrics();
        services.TryAddSingleton(sp => new DicomProxySettings(sp.GetRequiredService<ConfigurationGate>()));
        services.TryAddSingleton<DestinationHealthTracker>();
        services.TryAddSingleton<DestinationWeights>();
        services.TryAddSingleton<WeightedPicker>();
        services.TryAddSingleton<DestinationLimits>();
        services.TryAddSingleton<DicomDestinationSelector>();
        services.TryAddSingleton<DicomProxyMetrics>();
        services.TryAddSingleton<Hosting.ConnectionDrain>();
        services.TryAddSingleton<DicomDrain>();
        services.TryAddSingleton<DicomFailoverPipelines>();
        services.TryAddSingleton<NodeTls>();
        services.TryAddSingleton<DicomConnectionHandler>();

        services.AddSingleton<IDestinationProber, DicomEchoProber>();
        return services;
    }
}
