using System.Diagnostics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace ImagingProxy.Telemetry;

/// <summary>
/// OpenTelemetry wiring: our meter, ASP.NET Core/Kestrel, runtime, and the Prometheus exporter behind <c>/metrics</c>;
/// traces (associations, HL7 messages, probes, proxied HTTP requests) go to OTLP only when an endpoint is configured
/// (<c>ImagingProxy:Telemetry:OtlpEndpoint</c> or the standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c>).
/// </summary>
public static class ImagingProxyTelemetry
{
    /// <summary>The name of ImagingProxy's own <see cref="System.Diagnostics.Metrics.Meter"/> and <see cref="ActivitySource"/>.</summary>
    public const string MeterName = "ImagingProxy";

    /// <summary>Activities for associations, HL7 messages and probes.</summary>
    public static readonly ActivitySource ActivitySource = new(MeterName);

    public static IServiceCollection AddImagingProxyTelemetry(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<HealthMetrics>();
        services.AddSingleton<HttpProxyMetrics>();
        services.TryAddSingleton<Configuration.NodeTls>();
        services.AddSingleton<TlsMetrics>();
        services.AddSingleton<ListenerMetrics>();
        services.AddSingleton<ConfigurationMetrics>();
        var options = configuration.GetSection($"{Configuration.ImagingProxyOptions.SectionName}:Telemetry").Get<Configuration.TelemetryOptions>() ?? new Configuration.TelemetryOptions();
        services.AddKeyedSingleton(LimiterKeys.AeTitle, new TagValueLimiter(options.AeTitles, options.MaxAeTitles ?? Configuration.ProxyDefaults.MaxLabelValues));
        services.AddKeyedSingleton(LimiterKeys.MessageType, new TagValueLimiter(options.MessageTypes, options.MaxMessageTypes ?? Configuration.ProxyDefaults.MaxLabelValues));
        var telemetry = services.AddOpenTelemetry()
            .ConfigureResource(resource => resource.AddService("imagingproxy"))
            .WithMetrics(metrics => metrics
                .AddMeter(MeterName)
                .AddMeter("Microsoft.AspNetCore.Server.Kestrel")
                .AddAspNetCoreInstrumentation()
                .AddRuntimeInstrumentation()
                .AddPrometheusExporter());

        var otlp = options.OtlpEndpoint ?? Environment.GetEnvironmentVariable("OTEL_EXPORTER_OTLP_ENDPOINT");
        if (!string.IsNullOrEmpty(otlp) && Uri.TryCreate(otlp, UriKind.Absolute, out var endpoint))
        {
            var httpProtobuf = string.Equals(options.OtlpProtocol, "HttpProtobuf", StringComparison.OrdinalIgnoreCase);
            telemetry.WithTracing(tracing => tracing
                .AddSource(MeterName)
                .AddSource("Yarp.ReverseProxy")
                .AddAspNetCoreInstrumentation()
                .AddOtlpExporter(exporter =>
                {
                    exporter.Endpoint = endpoint;
                    exporter.Protocol = httpProtobuf ? OpenTelemetry.Exporter.OtlpExportProtocol.HttpProtobuf : OpenTelemetry.Exporter.OtlpExportProtocol.Grpc;
                }));
        }

        return services;
    }

    /// <summary>Service keys of the <see cref="TagValueLimiter"/> instances (<c>[FromKeyedServices(LimiterKeys.AeTitle)]</c>).</summary>
    public static class LimiterKeys
    {
        public const string AeTitle = "ae-title";
        public const string MessageType = "hl7-message-type";
    }

    /// <summary>The Prometheus scrape at <c>/metrics</c>, for every method (the Admin endpoint restricts it as its other paths).</summary>
    public static IEndpointConventionBuilder MapMetrics(this IEndpointRouteBuilder endpoints)
        => endpoints.MapPrometheusScrapingEndpoint("/metrics");
}
