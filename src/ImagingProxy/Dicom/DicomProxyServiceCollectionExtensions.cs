using ImagingProxy.Configuration;
using ImagingProxy.Health;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

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
        services.TryAddSingleton<DicomDestinationSelector>();
        services.TryAddSingleton<DicomProxyMetrics>();
        services.TryAddSingleton<DicomDrain>();
        services.TryAddSingleton<DicomFailoverPipelines>();
        services.TryAddSingleton<DicomConnectionHandler>();

        // The outbound half of the relay: pipe-based connections over sockets the handler connects itself (yarp-notes.md §6).
        services.TryAddSingleton(sp => new SocketConnectionContextFactory(
            // Inline scheduling: the relay never blocks, and a thread-pool hop per read costs latency on every C-STORE response.
            new SocketConnectionFactoryOptions { UnsafePreferInlineScheduling = true },
            sp.GetRequiredService<ILoggerFactory>().CreateLogger("ImagingProxy.Dicom.Upstream")));
        services.AddSingleton<IDestinationProber, DicomEchoProber>();
        return services;
    }
}
