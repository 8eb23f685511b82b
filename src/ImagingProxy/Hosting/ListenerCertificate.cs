using System.Net.Security;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using ImagingProxy.Configuration;
using Microsoft.AspNetCore.Server.Kestrel.Https;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Primitives;

namespace ImagingProxy.Hosting;

/// <summary>
/// The server certificate of a DICOM or MLLP TLS listener, chosen per handshake (Kestrel's
/// <see cref="TlsHandshakeCallbackOptions"/>). It comes from the listener's <c>Tls</c> settings in the live
/// configuration and is loaded again when a reload changes them or when the files change on disk
/// (<see cref="NodeTls.Stamp"/>, which follows a Kubernetes Secret's <c>..data</c> link), without rebinding the listener.
/// Relative paths are read from the content root, as Kestrel reads its endpoints' files
/// (<see cref="ServerCertificateFile.FullPath"/>).
/// A handshake costs a few file-metadata calls; the files are read only after a change. A certificate that fails to
/// load is logged once and the previous one keeps serving. Kestrel's <c>EndpointDefaults</c> (<c>SslProtocols</c>,
/// <c>ClientCertificateMode</c>) apply as they do to Kestrel's own endpoints.
/// </summary>
internal sealed class ListenerCertificate : IDisposable
{
    private readonly string _name;
    private readonly SslProtocols _sslProtocols;
    private readonly ClientCertificateMode _clientCertificateMode;
    private readonly IConfiguration _listener;
    private readonly string _contentRoot;
    private readonly ILogger _logger;
    private readonly IDisposable _subscription;
    private readonly Lock _lock = new();
    private int _version;
    private SettingsSnapshot _settings = new(-1, null);
    private Loaded _current;
    private Failed? _failed;

    /// <summary>
    /// Loads the certificate of <paramref name="listener"/> (its configuration section); throws as the load does.
    /// <paramref name="defaults"/> holds Kestrel's defaults for https endpoints (from <c>Kestrel:EndpointDefaults</c>);
    /// relative certificate paths are read from <paramref name="contentRoot"/>.
    /// </summary>
    public ListenerCertificate(string name, IConfigurationRoot configuration, IConfiguration listener, HttpsConnectionAdapterOptions defaults, string contentRoot, ILogger logger)
    {
        ArgumentNullException.ThrowIfNull(defaults);
        _name = name;
        _contentRoot = contentRoot;
        _sslProtocols = defaults.SslProtocols;
        _clientCertificateMode = defaults.ClientCertificateMode;
        _listener = listener;
        _logger = logger;
        _subscription = ChangeToken.OnChange(configuration.GetReloadToken, () => Interlocked.Increment(ref _version));
        var settings = Settings() ?? throw new InvalidOperationException($"Listener {name} has no Tls:Path.");
        _current = Load(settings, Stamp(settings));
    }

    /// <summary>The handshake callback: the current certificate, loaded again first if it changed.</summary>
    public ValueTask<SslServerAuthenticationOptions> OnConnection(TlsHandshakeCallbackContext context)
    {
        var options = Current().Options;
        if (context.Connection.Features.Get<TlsHandshakeProgress>() is { } progress)
        {
            progress.ClientHelloReceived = true;
            if (options.ClientCertificateRequired)
            {
                // Per connection, so that a refused client certificate is named in the handshake's failure line.
                options = ValidatingClientCertificate(options, progress);
            }
        }

        return new(options);
    }

    /// <summary>
    /// <paramref name="options"/> with a client certificate check that records why it refused one in
    /// <paramref name="progress"/> (<see cref="TlsHandshakeWatch"/> logs it): no certificate while one is required, or
    /// the chain's errors.
    /// </summary>
    private SslServerAuthenticationOptions ValidatingClientCertificate(SslServerAuthenticationOptions options, TlsHandshakeProgress progress)
    {
        var required = _clientCertificateMode == ClientCertificateMode.RequireCertificate;
        return new SslServerAuthenticationOptions
        {
            ServerCertificateContext = options.ServerCertificateContext,
            ApplicationProtocols = options.ApplicationProtocols,
            EnabledSslProtocols = options.EnabledSslProtocols,
            ClientCertificateRequired = true,
            RemoteCertificateValidationCallback = (_, certificate, _, errors) =>
            {
                if (certificate is null ? !required : errors == SslPolicyErrors.None)
                {
                    return true;
                }

                progress.ClientCertificateRefused = certificate is null
                    ? "the client sent no certificate (ClientCertificateMode RequireCertificate)"
                    : $"the client's certificate was refused: {errors} ({Telemetry.LogText.Printable(certificate.Subject)})";
                return false;
            },
        };
    }

    public void Dispose() => _subscription.Dispose();

    private Loaded Current()
    {
        var current = Volatile.Read(ref _current);

        // Tls removed by a reload: the listener stays bound with TLS and keeps its certificate.
        if (Settings() is not { } settings)
        {
            return current;
        }

        var stamp = Stamp(settings);
        if ((current.Settings == settings && current.Stamp == stamp) || Volatile.Read(ref _failed) == new Failed(settings, stamp))
        {
            return current;
        }

        lock (_lock)
        {
            current = _current;
            if ((current.Settings == settings && current.Stamp == stamp) || _failed == new Failed(settings, stamp))
            {
                return current;
            }

            try
            {
                current = Load(settings, stamp);
                Volatile.Write(ref _current, current);
                _failed = null;
                HostingLog.ListenerCertificateLoaded(_logger, _name, current.Options.ServerCertificateContext!.TargetCertificate.Thumbprint);
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException)
            {
                Volatile.Write(ref _failed, new Failed(settings, stamp));
                HostingLog.ListenerCertificateFailed(_logger, ex, _name, settings.Path!);
            }

            return current;
        }
    }

    /// <summary>The listener's <c>Tls</c> settings with full paths, bound again only after a configuration change.</summary>
    private CertificateConfig? Settings()
    {
        // The version is taken before binding: a reload during the bind leaves a stale entry that the next read replaces.
        var version = Volatile.Read(ref _version);
        var cached = Volatile.Read(ref _settings);
        if (cached.Version == version)
        {
            return cached.Settings;
        }

        var settings = _listener.GetSection("Tls").Get<CertificateConfig>() is { Path.Length: > 0 } tls
            ? tls with { Path = ServerCertificateFile.FullPath(tls.Path, _contentRoot), KeyPath = tls.KeyPath is { Length: > 0 } key ? ServerCertificateFile.FullPath(key, _contentRoot) : null }
            : null;
        Volatile.Write(ref _settings, new SettingsSnapshot(version, settings));
        return settings;
    }

    private static long Stamp(CertificateConfig settings)
        => HashCode.Combine(NodeTls.Stamp(settings.Path!), settings.KeyPath is null ? 0 : NodeTls.Stamp(settings.KeyPath));

    private Loaded Load(CertificateConfig settings, long stamp)
    {
        var certificate = ServerCertificateFile.Load(settings.Path!, settings.KeyPath, settings.Password);
        X509Certificate2Collection? chain = null;
        if (settings.KeyPath is not null)
        {
            // Intermediates after the server's own certificate in the PEM file (a full chain) are sent with it.
            var all = new X509Certificate2Collection();
            all.ImportFromPemFile(settings.Path!);
            if (all.Count > 1)
            {
                all.RemoveAt(0);
                chain = all;
            }
        }

        var context = SslStreamCertificateContext.Create(certificate, chain, offline: true);

        // ApplicationProtocols set (no ALPN for DICOM and HL7): Kestrel then leaves the shared options unchanged.
        var options = new SslServerAuthenticationOptions { ServerCertificateContext = context, ApplicationProtocols = [], EnabledSslProtocols = _sslProtocols };
        if (_clientCertificateMode is ClientCertificateMode.AllowCertificate or ClientCertificateMode.RequireCertificate)
        {
            // As Kestrel's HttpsConnectionMiddleware: ask for a certificate; one that is sent must be valid.
            var required = _clientCertificateMode == ClientCertificateMode.RequireCertificate;
            options.ClientCertificateRequired = true;
            options.RemoteCertificateValidationCallback = (_, certificate, _, errors) => certificate is null ? !required : errors == SslPolicyErrors.None;
        }

        return new Loaded(settings, stamp, options);
    }

    private sealed record Failed(CertificateConfig Settings, long Stamp);

    private sealed record SettingsSnapshot(int Version, CertificateConfig? Settings);

    private sealed record Loaded(CertificateConfig Settings, long Stamp, SslServerAuthenticationOptions Options);
}
