using System.Net;
using ImagingProxy.Configuration;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Server.Kestrel.Core;

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
                if (config.Tls is { Path: { } path } tls)
                {
                    listenOptions.UseHttps(LoadCertificate(path, tls.KeyPath, tls.Password));
                }

                listenOptions.UseConnectionHandler<THandler>();
            });
        }
    }

    private static System.Security.Cryptography.X509Certificates.X509Certificate2 LoadCertificate(string path, string? keyPath, string? password)
        => keyPath is not null
            ? System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(path, keyPath)
            : System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12FromFile(path, password);
}
