using System.Text.Json;
using ImagingProxy.Balancing;
using ImagingProxy.Configuration;
using ImagingProxy.Dicom;
using ImagingProxy.Forwarding;
using ImagingProxy.Health;
using ImagingProxy.Mllp;
using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Routing;
using Microsoft.AspNetCore.Server.Kestrel;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.LoadBalancing;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Hosting;

/// <summary>Builds the ImagingProxy web application: the one place that wires every feature together.</summary>
public static class ImagingProxyApp
{
    /// <summary>Builds the host. Throws <see cref="InvalidConfigurationException"/> listing every problem of a bad configuration.</summary>
    public static WebApplication Build(string[] args, Action<WebApplicationBuilder>? configure = null)
    {
        var builder = CreateBuilder(args);

        // Every JSON file keeps its last content that parsed when an edit does not, and reports it to the gate.
        LastParsedJsonConfigurationSource.ReplaceJsonFiles(builder.Configuration);

        // Layering: appsettings.json next to the host, then --config PATH (or IMAGINGPROXY_CONFIG), then environment, then command line.
        var configPath = FindConfigPath(args) ?? Environment.GetEnvironmentVariable(ProxyDefaults.ConfigEnvironmentVariable);
        if (!string.IsNullOrEmpty(configPath))
        {
            var fullPath = Path.GetFullPath(configPath);
            if (!File.Exists(fullPath))
            {
                throw new InvalidConfigurationException([$"--config: file '{fullPath}' does not exist."]);
            }

            builder.Configuration.Sources.Add(LastParsedJsonConfigurationSource.For(fullPath, optional: false, reloadOnChange: true));
            builder.Configuration.AddEnvironmentVariables();
            builder.Configuration.AddCommandLine(args);
        }

        configure?.Invoke(builder);

        var gate = new ConfigurationGate(builder.Configuration);
        gate.ApplyInitial();
        var config = gate.Configuration;
        var listeners = new ListenerRegistry();

        builder.Services.AddSingleton(gate);
        builder.Services.AddSingleton(listeners);
        builder.Services.AddSingleton<ReadinessState>();
        builder.Services.TryAddSingleton<ConnectionDrain>();
        builder.Services.TryAddSingleton(TimeProvider.System);

        // 32 KiB socket receives instead of Kestrel's 4 KiB blocks: relays of imaging data make ~10x fewer system calls.
        builder.Services.AddSingleton<Microsoft.AspNetCore.Connections.IMemoryPoolFactory<byte>, LargeBlockMemoryPoolFactory>();

        // SIGTERM drain: Kestrel stops accepting at once, open connections get this long to finish, then are aborted.
        // The Admin endpoint keeps serving meanwhile and closes last (SplitKestrelServer).
        var proxyOptions = config.GetSection(ImagingProxyOptions.SectionName).Get<ImagingProxyOptions>() ?? new ImagingProxyOptions();
        var drain = proxyOptions.DrainTimeout ?? ProxyDefaults.DrainTimeout;
        builder.Services.Configure<HostOptions>(options => options.ShutdownTimeout = drain);

        // Inline scheduling on the socket transport: no code path blocks a thread (all I/O is async), and skipping the
        // thread-pool hop per read helps relay throughput and latency. ImagingProxy:InlineScheduling=false turns it off.
        var inline = !string.Equals(config[$"{ImagingProxyOptions.SectionName}:InlineScheduling"], "false", StringComparison.OrdinalIgnoreCase);
        builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = inline);
        InlineSocketCompletions.Enable(inline, proxyOptions.SocketEngines);

        // The Admin endpoint gets a Kestrel server of its own (SplitKestrelServer), so that it keeps serving probes and
        // scrapes while the data listeners drain; this server binds every other endpoint and the raw listeners.
        // Kestrel follows accepted changes only: a change YARP refuses never moves an endpoint (ConfigurationGate.Committed).
        var kestrelSection = gate.Committed.GetSection("Kestrel");
        var endpointNames = kestrelSection.GetSection("Endpoints").GetChildren().Select(e => e.Key).ToList();
        var adminName = endpointNames.FirstOrDefault(IsAdmin);
        var limitSubscriptions = new KestrelLimitsSubscriptions();
        builder.WebHost.ConfigureKestrel((context, kestrel) =>
        {
            // Kestrel:Limits, which ASP.NET Core does not bind itself. Imaging bodies are large (STOW-RS, MTOM): no
            // global body cap unless configured; routes set MaxRequestBodySize where wanted.
            limitSubscriptions.Add(KestrelLimitsConfig.Bind(kestrelSection.GetSection("Limits"), kestrel.Limits));
            var loader = kestrel.Configure(adminName is not null ? KestrelEndpointSubset.Without(kestrelSection, adminName) : kestrelSection, reloadOnChange: true);
            foreach (var name in endpointNames.Where(name => name != adminName))
            {
                AttachListener(loader, name, listeners);
            }

            // Raw protocol listeners: DICOM associations and HL7 messages end in their own connection handlers.
            RawListenerBinder.Bind<DicomConnectionHandler>(kestrel, ProxyListener.DicomKind, proxyOptions.Dicom.Listeners, listeners);
            RawListenerBinder.Bind<MllpConnectionHandler>(kestrel, ProxyListener.MllpKind, proxyOptions.Mllp.Listeners, listeners);
        });

        // Raw listeners receive without Kestrel's zero-byte wait first (one system call and one pipe round less per
        // received chunk: an A/B run had 15% less proxy user CPU per HL7 message); a connection holds a pool block while
        // it waits. HTTP endpoints keep the wait: browsers hold many idle keep-alive connections. With inline scheduling,
        // plain-TCP DICOM associations start on the accepting thread (DicomAcceptStart).
        var acceptStart = inline
            ? proxyOptions.Dicom.Listeners.Where(l => l.Value.Tls?.Path is null).Select(l => l.Key).ToHashSet(StringComparer.OrdinalIgnoreCase)
            : [];
        builder.Services.AddSingleton<IConnectionListenerFactory>(sp =>
        {
            var http = ActivatorUtilities.CreateInstance<SocketTransportFactory>(sp);
            var rawOptions = sp.GetRequiredService<IOptionsFactory<SocketTransportOptions>>().Create(Options.DefaultName);
            rawOptions.WaitForDataBeforeAllocatingBuffer = false;
            var raw = new SocketTransportFactory(Options.Create(rawOptions), sp.GetRequiredService<ILoggerFactory>());
            var start = new DicomAcceptStart(sp.GetRequiredService<DicomConnectionHandler>(), acceptStart, sp.GetRequiredService<IOptions<KestrelServerOptions>>().Value.Limits);
            return new ProxyTransportFactory(http, raw, listeners, start.HookFor, sp.GetRequiredService<ILogger<ProxyTransportFactory>>());
        });

        if (adminName is not null)
        {
            var hasDataListeners = endpointNames.Any(name => !IsAdmin(name)) || proxyOptions.Dicom.Listeners.Count > 0 || proxyOptions.Mllp.Listeners.Count > 0;
            AddSplitServer(builder.Services, kestrelSection, adminName, listeners, hasDataListeners, limitSubscriptions);
        }

        AddProxy(builder.Services, config);

        builder.Services.AddDicomProxy();
        builder.Services.AddMllpProxy();
        builder.Services.AddRequestTimeouts();
        builder.Services.AddImagingProxyTelemetry(builder.Configuration);

        var app = builder.Build();
        var lifetime = app.Services.GetRequiredService<IHostApplicationLifetime>();
        lifetime.ApplicationStopped.Register(limitSubscriptions.Dispose);
        var hostLogger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ImagingProxy.Hosting");
        lifetime.ApplicationStarted.Register(() =>
        {
            foreach (var listener in listeners.All)
            {
                HostingLog.ListenerBound(hostLogger, listener.Name, listener.Kind, listener.EndPoint.ToString() ?? "?");
            }

            app.Services.GetRequiredService<ReadinessState>().MarkStarted();
        });
        _ = app.Services.GetRequiredService<HealthMetrics>();
        _ = app.Services.GetRequiredService<TlsMetrics>();
        _ = app.Services.GetRequiredService<ConfigurationMetrics>();

        // The drain (its start and deadline lines) for every deployment, HTTP-only ones too.
        _ = app.Services.GetRequiredService<ConnectionDrain>();
        gate.AddAcceptance(app.Services.GetRequiredService<ProxyConfigAcceptance>());
        gate.StartWatching(app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("ImagingProxy.Configuration"));

        app.UseRouting();
        var unrouted = app.Services.GetRequiredService<UnroutedRequestAnswer>();
        app.Use(next => context => unrouted.InvokeAsync(context, next));
        app.UseRequestTimeouts();
        app.MapAdminEndpoints();
        app.MapMetrics().WithMetadata(new ListenerMetadata(EndpointNames.Admin), new HttpMethodMetadata(AdminEndpoints.ReadMethods));
        MapProxy(app);
        return app;
    }

    /// <summary>
    /// YARP loads and validates its configuration here; what it refuses (a transform, a match template, a policy the
    /// validator does not know) ends the start-up like any other configuration problem: the list and exit code 2.
    /// </summary>
    private static void MapProxy(WebApplication app)
    {
        try
        {
            app.MapReverseProxy(ProxyPipeline);
        }
        catch (InvalidOperationException ex) when (ex.InnerException is { } failure)
        {
            throw new InvalidConfigurationException(ProxyConfigAcceptance.Problems(failure));
        }
    }

    private static void ProxyPipeline(IReverseProxyApplicationBuilder pipeline)
    {
        var services = pipeline.ApplicationServices;
        var metrics = services.GetRequiredService<HttpProxyMetrics>();
        var timeout = services.GetRequiredService<RequestTimeoutStep>();
        var bodyLimit = services.GetRequiredService<RequestBodyLimitStep>();
        var xds = services.GetRequiredService<XdsRoutingStep>();
        var limits = services.GetRequiredService<DestinationLimitStep>();
        var retry = services.GetRequiredService<HttpRetryStep>();
        var noDestination = services.GetRequiredService<NoDestinationStep>();

        // Each step gets the next one once, when the pipeline is built (no delegate made per request).
        pipeline.Use(next => context => metrics.InvokeAsync(context, next));
        pipeline.Use(next => context => timeout.InvokeAsync(context, next));
        pipeline.Use(next => context => bodyLimit.InvokeAsync(context, next));
        pipeline.Use(next => context => xds.InvokeAsync(context, next));
        pipeline.Use(next => context => limits.InvokeAsync(context, next));
        pipeline.Use(next => context => retry.InvokeAsync(context, next));
        pipeline.UseSessionAffinity();
        pipeline.Use(next => context => noDestination.InvokeAsync(context, next));
        pipeline.UseLoadBalancing();
        pipeline.UsePassiveHealthChecks();
    }

    /// <summary>The service a registration this host replaced with its own wrapper describes (YARP's, built as YARP would).</summary>
    private static T Instance<T>(IServiceProvider services, ServiceDescriptor replaced)
        => (T)(replaced.ImplementationInstance
            ?? replaced.ImplementationFactory?.Invoke(services)
            ?? ActivatorUtilities.CreateInstance(services, replaced.ImplementationType!));

    private static bool IsAdmin(string endpointName) => string.Equals(endpointName, EndpointNames.Admin, StringComparison.OrdinalIgnoreCase);

    /// <summary>Names the connections of a configured Kestrel endpoint and registers it for /status and the start-up log.</summary>
    private static void AttachListener(KestrelConfigurationLoader loader, string name, ListenerRegistry listeners)
        => loader.Endpoint(name, endpoint =>
        {
            var listener = new ProxyListener(name, ProxyListener.HttpKind, endpoint.ListenOptions);
            listener.Attach();
            listeners.Add(listener);
        });

    /// <summary>
    /// Replaces the host's Kestrel server by <see cref="SplitKestrelServer"/>: that server (whose options the
    /// <c>ConfigureKestrel</c> callbacks set) for the data listeners, and a second instance of the same server type,
    /// with options of its own loading only <c>Kestrel:Endpoints:Admin</c>, for the Admin endpoint. Both share the
    /// application's services: transport, memory pool, logging, metrics, and the one request pipeline.
    /// </summary>
    private static void AddSplitServer(IServiceCollection services, IConfigurationSection kestrel, string adminName, ListenerRegistry listeners, bool hasDataListeners, KestrelLimitsSubscriptions limits)
    {
        var registered = services.Last(d => d.ServiceType == typeof(IServer));
        var serverType = registered.ImplementationType
            ?? throw new InvalidOperationException($"The registered {nameof(IServer)} is not a type (expected Kestrel's); the Admin endpoint cannot get a server of its own.");
        services.Remove(registered);
        services.AddSingleton(sp =>
        {
            var adminOptions = new KestrelServerOptions { ApplicationServices = sp };
            limits.Add(KestrelLimitsConfig.Bind(kestrel.GetSection("Limits"), adminOptions.Limits));
            var loader = adminOptions.Configure(KestrelEndpointSubset.Only(kestrel, adminName), reloadOnChange: true);
            AttachListener(loader, adminName, listeners);
            var data = (IServer)ActivatorUtilities.CreateInstance(sp, serverType);
            var admin = (IServer)ActivatorUtilities.CreateInstance(sp, serverType, Options.Create(adminOptions));
            return new SplitKestrelServer(data, admin, hasDataListeners);
        });
        services.AddSingleton<IServer>(sp => sp.GetRequiredService<SplitKestrelServer>());
        services.AddHostedService<AdminServerShutdown>();
    }

    private static void AddProxy(IServiceCollection services, IConfiguration config)
    {
        services.AddReverseProxy()
            .LoadFromConfig(config.GetSection("ReverseProxy"))
            .AddConfigFilter<ProxyConfigFilter>()
            .AddTransforms(ExpectContinue.Apply)
            .AddTransforms(ForwardedHeader.Apply)
            .AddTransforms(EncodedSlashPath.Apply) // and RawQueryString: the request target as the client wrote it
            .AddTransforms(RetryableStatus.Apply);
        services.AddSingleton<Yarp.ReverseProxy.Forwarder.IForwarderHttpClientFactory, ProxyHttpClientFactory>();
        services.AddSingleton<ProxyConfigAcceptance>();
        services.AddSingleton<Yarp.ReverseProxy.Configuration.IConfigChangeListener>(sp => sp.GetRequiredService<ProxyConfigAcceptance>());
        services.AddSingleton<Yarp.ReverseProxy.Configuration.IProxyConfigProvider, XdsRouteProvider>();
        services.AddSingleton<IAvailableDestinationsPolicy, HealthyAndUnknownPolicy>();
        services.AddSingleton<IAvailableDestinationsPolicy, HealthyOrPanicPolicy>();
        services.AddSingleton<MatcherPolicy, ListenerMatcherPolicy>();
        services.AddSingleton<XdsRoutingStep>();
        services.AddSingleton<NoDestinationStep>();
        services.AddSingleton<RequestBodyLimitStep>();
        services.AddSingleton<HttpRetryStep>();
        services.AddSingleton<RequestTimeoutStep>();
        services.AddSingleton<DestinationLimitStep>();
        services.AddSingleton<UnroutedRequestAnswer>();

        // Health: one tracker, YARP's updater wrapped so every change is seen, our monitor for every protocol.
        services.TryAddSingleton<DestinationHealthTracker>();
        var inner = services.Last(d => d.ServiceType == typeof(IDestinationHealthUpdater));
        services.Remove(inner);
        services.AddSingleton<IDestinationHealthUpdater>(sp => new TrackingDestinationHealthUpdater(
            Instance<IDestinationHealthUpdater>(sp, inner),
            sp.GetRequiredService<DestinationHealthTracker>(),
            sp.GetRequiredService<TimeProvider>()));

        // Passive health of HTTP clusters: ours under YARP's policy name, which honours ReactivationPeriod (YARP's never
        // reactivates sooner than its 60 s detection window) and retakes a reactivated destination at its first failure.
        var yarpPassive = services.Single(d => d.ServiceType == typeof(IPassiveHealthCheckPolicy) && d.ImplementationType?.Name == "TransportFailureRateHealthPolicy");
        services.Remove(yarpPassive);
        services.AddSingleton<TransportFailureRatePolicy>();
        services.AddSingleton<IPassiveHealthCheckPolicy>(sp => sp.GetRequiredService<TransportFailureRatePolicy>());

        // Load balancing of HTTP clusters: YARP's policies under their names, with destination Weight and cluster SlowStart.
        services.TryAddSingleton<DestinationWeights>();
        services.TryAddSingleton<WeightedPicker>();
        services.TryAddSingleton<DestinationLimits>();
        foreach (var policy in services.Where(d => d.ServiceType == typeof(ILoadBalancingPolicy)).ToList())
        {
            services.Remove(policy);
            services.AddSingleton<ILoadBalancingPolicy>(sp => new WeightedLoadBalancingPolicy(Instance<ILoadBalancingPolicy>(sp, policy), sp.GetRequiredService<WeightedPicker>(), sp));
        }

        services.AddSingleton<IDestinationProber, HttpProber>();
        services.AddSingleton<IDestinationProber, TcpConnectProber>();
        services.AddSingleton<ActiveHealthMonitor>();
        services.AddSingleton<IClusterChangeListener>(sp => sp.GetRequiredService<ActiveHealthMonitor>());
        services.AddHostedService(sp => sp.GetRequiredService<ActiveHealthMonitor>());
    }

    /// <summary>
    /// The web application builder, which reads the host's appsettings files at once. One that does not parse stops the
    /// start-up as any invalid configuration does (exit code 2, the file and the parser's message), not with an
    /// unhandled exception; later edits are the gate's (<see cref="LastParsedJsonConfigurationSource"/>).
    /// </summary>
    private static WebApplicationBuilder CreateBuilder(string[] args)
    {
        try
        {
            return WebApplication.CreateBuilder(new WebApplicationOptions
            {
                Args = args,
                ContentRootPath = AppContext.BaseDirectory,
            });
        }
        catch (InvalidDataException ex)
        {
            // .NET: "Failed to load configuration from file '...'." around the parser's FormatException and JsonException.
            var cause = ex.InnerException?.InnerException ?? ex.InnerException;
            throw new InvalidConfigurationException([cause is JsonException ? $"{ex.Message} Not valid JSON: {cause.Message}" : $"{ex.Message} {cause?.Message}"]);
        }
    }

    /// <summary>Finds <c>--config PATH</c> or <c>--config=PATH</c>.</summary>
    internal static string? FindConfigPath(string[] args)
    {
        for (var i = 0; i < args.Length; i++)
        {
            if (args[i] == "--config" && i + 1 < args.Length)
            {
                return args[i + 1];
            }

            if (args[i].StartsWith("--config=", StringComparison.Ordinal))
            {
                return args[i]["--config=".Length..];
            }
        }

        return null;
    }
}
