using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;

namespace ImagingProxy.Telemetry;

/// <summary>OpenTelemetry wiring: our meter, ASP.NET Core/Kestrel, runtime, and the Prometheus exporter behind <c>/metrics</c>.</summary>
public static class ImagingProxyTelemetry
{
    /// <summary>The name of ImagingProxy's own <see cref="System.Diagnostics.Metrics.Meter"/> and ActivitySource.</summary>
    public const string MeterName = "ImagingProxy";

    public static IServiceCollection AddImagingProxyTelemetry(this IServiceCollection services)
    {
        services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("imagingproxy"))
            .WithMetrics(metrics => metrics
                .AddMeter(MeterName)
                .AddMeter("Microsoft.AspNetCore.Server.Kestrel")
                .AddAspNetCoreInstrumentation()
                .AddRuntimeInstrumentation()
                .AddPrometheusExporter());
        return services;
    }

    public static IEndpointConventionBuilder MapMetrics(this IEndpointRouteBuilder endpoints)
        => endpoints.MapPrometheusScrapingEndpoint("/metrics");
}
