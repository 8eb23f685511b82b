using System.Net;
using System.Security.Authentication;
using ImagingProxy.Configuration;
using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace ImagingProxy.Hosting;

/// <summary>
/// Binds the raw TCP listeners of <c>ImagingProxy:Dicom:Listeners</c> and <c>ImagingProxy:Mllp:Listeners</c> as Kestrel
/// endpoints ending in a protocol <see cref="ConnectionHandler"/> (Kestrel in; yarp-notes.md §6), optionally behind TLS.
/// </summary>
public static class RawListenerBinder
{
    public static void Bind<THandler>(KestrelServerOptions kestrel, string kind, IReadOnlyDictionary<string, TcpListenerConfig> configured, ListenerRegistry registry)
        where THandler : ConnectionHandler
    {
        foreach (var (name, config) in configured)
        {
            var address = IPAddress.Any;
            if (!string.IsNullOrEmpty(config.Address) && ConfigurationValidator.TryParseListenAddress(config.Address, out var parsed) && parsed is not null)
            {
                address = parsed;
            }

            kestrel.Listen(address, config.Port, listenOptions =>
            {
                var listener = new ProxyListener(name, kind, listenOptions);
                listener.Attach();
                registry.Add(listener);
                UseCloseGuard(listenOptions, kind, name);
                if (config.Tls is { Path: not null })
                {
                    UseTls(listenOptions, kind, name);
                }

                listenOptions.UseConnectionHandler<THandler>();
            });
        }
    }

    /// <summary>A connection's close after its handler returned is bounded (<see cref="RawConnectionCloseGuard"/>).</summary>
    private static void UseCloseGuard(ListenOptions listenOptions, string kind, string name)
    {
        var services = listenOptions.ApplicationServices;
        var guard = new RawConnectionCloseGuard(
            name,
            kind,
            services.GetRequiredService<ListenerMetrics>(),
            services.GetRequiredService<TimeProvider>(),
            services.GetRequiredService<ILoggerFactory>().CreateLogger("ImagingProxy.Hosting"));
        listenOptions.Use(guard.Around);
    }

    /// <summary>
    /// TLS with the certificate chosen per handshake from the live configuration and files (<see cref="ListenerCertificate"/>),
    /// failed handshakes logged and counted (<see cref="TlsHandshakeWatch"/>).
    /// </summary>
    private static void UseTls(ListenOptions listenOptions, string kind, string name)
    {
        var services = listenOptions.ApplicationServices;
        var configuration = services.GetRequiredService<ConfigurationGate>().Committed;
        var logger = services.GetRequiredService<ILoggerFactory>().CreateLogger("ImagingProxy.Hosting");
        var certificate = new ListenerCertificate(
            name,
            configuration,
            configuration.GetSection($"{ImagingProxyOptions.SectionName}:{kind}:Listeners:{name}"),
            HttpsDefaults(listenOptions.KestrelServerOptions),
            services.GetRequiredService<IHostEnvironment>().ContentRootPath,
            logger);
        services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopped.Register(certificate.Dispose);
        var tls = new TlsHandshakeCallbackOptions { OnConnection = certificate.OnConnection };
        var watch = new TlsHandshakeWatch(name, kind, tls.HandshakeTimeout, services.GetRequiredService<TlsMetrics>(), services.GetRequiredService<TimeProvider>(), logger,
            services.GetService<ConnectionDrain>()?.RequestWaitOver ?? default);
        listenOptions.Use(watch.Around);
        listenOptions.UseHttps(tls);
        listenOptions.Use(TlsHandshakeWatch.MarkEstablished);
    }

    /// <summary>
    /// <c>Kestrel:EndpointDefaults:SslProtocols</c> and <c>ClientCertificateMode</c>, read as Kestrel reads them (values it
    /// does not know are skipped): Kestrel applies them to every https endpoint, these listeners included.
    /// </summary>
    private static HttpsConnectionAdapterOptions HttpsDefaults(KestrelServerOptions kestrel)
    {
        var defaults = new HttpsConnectionAdapterOptions();
        if (kestrel.ConfigurationLoader?.Configuration.GetSection("EndpointDefaults") is not { } section)
        {
            return defaults;
        }

        var protocols = section.GetSection("SslProtocols").Get<string[]>();
        if (protocols is not null)
        {
            defaults.SslProtocols = protocols.Aggregate(SslProtocols.None, (all, protocol) => Enum.TryParse<SslProtocols>(protocol, ignoreCase: true, out var parsed) ? all | parsed : all);
        }

        if (Enum.TryParse<ClientCertificateMode>(section["ClientCertificateMode"], ignoreCase: true, out var mode))
        {
            defaults.ClientCertificateMode = mode;
        }

        return defaults;
    }
}
