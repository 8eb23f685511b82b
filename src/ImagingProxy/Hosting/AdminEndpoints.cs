using System.Globalization;
using System.Text.Json;
using ImagingProxy.Balancing;
using ImagingProxy.Configuration;
using ImagingProxy.Dicom;
using ImagingProxy.Health;
using ImagingProxy.Mllp;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Hosting;

/// <summary>The Admin endpoint's paths: <c>/healthz</c>, <c>/readyz</c>, <c>/status</c> (and <c>/metrics</c>, mapped by telemetry).</summary>
public static class AdminEndpoints
{
    public static void MapAdminEndpoints(this IEndpointRouteBuilder endpoints)
    {
        // GET and HEAD: a load balancer or monitor may check with either (HAProxy `http-check meth HEAD`, say).
        var admin = new ListenerMetadata(EndpointNames.Admin);
        endpoints.MapMethods("/healthz", ReadMethods, () => Results.Text("ok\n")).WithMetadata(admin);
        endpoints.MapMethods("/readyz", ReadMethods, (ReadinessState readiness) => readiness.IsReady
            ? Results.Text("ready\n")
            : Results.Text(readiness.IsDraining ? "draining\n" : "starting\n", statusCode: StatusCodes.Status503ServiceUnavailable)).WithMetadata(admin);
        endpoints.MapMethods("/status", ReadMethods, WriteStatusAsync).WithMetadata(admin);
    }

    /// <summary>The methods the admin paths answer (<c>/metrics</c> too): GET and HEAD.</summary>
    public static IReadOnlyList<string> ReadMethods { get; } = [HttpMethods.Get, HttpMethods.Head];

    private static async Task WriteStatusAsync(HttpContext context)
    {
        var services = context.RequestServices;
        var state = services.GetRequiredService<IProxyStateLookup>();
        var tracker = services.GetRequiredService<DestinationHealthTracker>();
        var passive = services.GetService<TransportFailureRatePolicy>();
        var weights = services.GetRequiredService<DestinationWeights>();
        var mllpPool = services.GetService<MllpNodePool>();
        var gate = services.GetRequiredService<ConfigurationGate>();
        var listeners = services.GetRequiredService<ListenerRegistry>();
        var readiness = services.GetRequiredService<ReadinessState>();
        var dicom = services.GetService<DicomConnectionHandler>();
        var dicomSettings = services.GetService<DicomProxySettings>();
        var mllp = services.GetService<MllpConnectionHandler>();
        var mllpSettings = services.GetService<MllpProxyConfiguration>();

        context.Response.ContentType = "application/json; charset=utf-8";
        await using var json = new Utf8JsonWriter(context.Response.Body, new JsonWriterOptions { Indented = true });
        json.WriteStartObject();
        json.WriteBoolean("ready", readiness.IsReady);
        json.WriteStartObject("configuration");
        json.WriteNumber("generation", gate.Generation);
        if (gate.AppliedAt is { } applied)
        {
            json.WriteString("appliedAt", applied);
        }

        if (gate.LastRejection.Count > 0)
        {
            json.WriteString("rejectedAt", gate.RejectedAt ?? default);
            json.WriteStartArray("rejection");
            foreach (var problem in gate.LastRejection)
            {
                json.WriteStringValue(problem);
            }

            json.WriteEndArray();
        }

        json.WriteEndObject();

        json.WriteStartArray("listeners");
        foreach (var listener in listeners.All)
        {
            json.WriteStartObject();
            json.WriteString("name", listener.Name);
            json.WriteString("kind", listener.Kind);
            json.WriteString("address", listener.EndPoint.ToString());
            if (listener.Kind == ProxyListener.DicomKind && dicom is not null)
            {
                // Associations open now (accept to close) and the listener's MaxAssociations, when it has one.
                json.WriteNumber("openAssociations", dicom.OpenOn(listener.Name));
                if (dicomSettings is not null && dicomSettings.Current.Listeners.TryGetValue(listener.Name, out var config) && config.MaxAssociations is { } max)
                {
                    json.WriteNumber("maxAssociations", max);
                }
            }
            else if (listener.Kind == ProxyListener.MllpKind && mllp is not null)
            {
                json.WriteNumber("openConnections", mllp.OpenOn(listener.Name));
                if (mllpSettings is not null && mllpSettings.Current.MaxConnections.TryGetValue(listener.Name, out var maxConnections))
                {
                    json.WriteNumber("maxConnections", maxConnections);
                }
            }

            json.WriteEndObject();
        }

        json.WriteEndArray();

        json.WriteStartArray("clusters");
        foreach (var cluster in state.GetClusters().OrderBy(c => c.ClusterId, StringComparer.Ordinal))
        {
            WriteCluster(json, cluster, tracker, passive, weights, mllpPool);
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

    private static void WriteCluster(Utf8JsonWriter json, ClusterState cluster, DestinationHealthTracker tracker, TransportFailureRatePolicy? passive, DestinationWeights weights, MllpNodePool? mllpPool)
    {
        var config = cluster.Model.Config;
        var protocol = ClusterProtocols.Of(config);
        var available = cluster.DestinationsState?.AvailableDestinations ?? [];
        json.WriteStartObject();
        json.WriteString("id", cluster.ClusterId);
        json.WriteString("protocol", protocol.ToString());
        json.WriteString("loadBalancingPolicy", ClusterProtocols.LoadBalancingPolicy(config));
        json.WriteBoolean("activeHealthCheck", ActiveHealthMonitor.IsEnabled(config));
        json.WriteBoolean("passiveHealthCheck", config.HealthCheck?.Passive?.Enabled == true);
        var slowStart = DestinationWeights.SlowStartOf(config);
        if (slowStart > TimeSpan.Zero)
        {
            json.WriteString("slowStart", slowStart.ToString("c", CultureInfo.InvariantCulture));
        }

        json.WriteNumber("availableDestinations", available.Count);
        json.WriteStartArray("destinations");
        foreach (var destination in cluster.Destinations.Values.OrderBy(d => d.DestinationId, StringComparer.Ordinal))
        {
            var record = tracker.Observe(cluster, destination);
            json.WriteStartObject();
            json.WriteString("id", destination.DestinationId);
            json.WriteString("address", destination.Model.Config.Address);
            if (destination.Model.Config.Metadata?.GetValueOrDefault(MetadataKeys.AeTitle) is { } ae)
            {
                json.WriteString("aeTitle", ae);
            }

            json.WriteStartObject("health");
            json.WriteString("active", record.Active.ToString());
            json.WriteString("passive", record.Passive.ToString());
            if (passive?.IsOnProbation(destination) == true)
            {
                // Taken out by HTTP passive health and not answered successfully since: its next failure takes it out again.
                json.WriteBoolean("probation", true);
            }

            json.WriteEndObject();
            json.WriteString("since", record.Since);
            json.WriteBoolean("available", AvailableDestinationsPolicies.Includes(available, destination));
            json.WriteBoolean("draining", AvailableDestinationsPolicies.IsDraining(destination));
            if (AvailableDestinationsPolicies.IsBackup(destination))
            {
                json.WriteBoolean("backup", true);
            }

            // HL7: the node connections rented now (held by connections that stick to the node, or carrying a message).
            json.WriteNumber("activeRequests", protocol == ClusterProtocol.Mllp && mllpPool is not null
                ? mllpPool.LoadOf(destination.Model.Config.Address)
                : destination.ConcurrentRequestCount);

            // Its share now: Weight, less while a slow start runs.
            json.WriteNumber("weight", Math.Round(weights.Of(cluster, destination), 3));
            if (DestinationLimits.MaxOf(destination.Model.Config) is > 0 and var max)
            {
                json.WriteNumber("maxConcurrent", max);
            }
            json.WriteEndObject();
        }

        json.WriteEndArray();
        json.WriteEndObject();
    }

}
