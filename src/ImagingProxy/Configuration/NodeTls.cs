using System.Collections.Concurrent;
using System.Net.Security;
using System.Security.Cryptography.X509Certificates;
using Microsoft.Extensions.Configuration;
using Yarp.ReverseProxy.Configuration;

namespace ImagingProxy.Configuration;

/// <summary>
/// TLS towards <c>tls://</c> destinations (DICOM TLS nodes, HL7 receivers over TLS): the client side of one node connection, from the cluster's
/// metadata (<see cref="MetadataKeys.TlsCaPath"/>, <see cref="MetadataKeys.TlsClientCertificatePath"/>,
/// <see cref="MetadataKeys.TlsClientKeyPath"/>) and the destination's (<see cref="MetadataKeys.TlsServerName"/>).
/// </summary>
/// <remarks>
/// <para>
/// The node's certificate is checked as an HTTPS client checks a server's: its chain must end at a trusted root (the
/// system's trust store, or only the CA certificates of <c>Tls.CaPath</c> when it is set), it must be valid now, and it
/// must carry the server name (the host of the address unless <c>Tls.ServerName</c> names another; an IP address must be
/// among its subject alternative names). Revocation is not checked (hospital CAs rarely publish reachable CRL or OCSP
/// endpoints to a proxy). No setting accepts an invalid certificate: a node with a self-signed certificate is trusted by
/// putting that certificate in <c>Tls.CaPath</c>.
/// </para>
/// <para>
/// Certificate files are read once and again when they change on disk (a rotated Kubernetes secret, whose files are
/// symbolic links to the current version): each connection compares the files' targets and last write times.
/// </para>
/// </remarks>
public sealed class NodeTls
{
    private readonly string _contentRoot;
    private readonly ConcurrentDictionary<string, Loaded<X509Certificate2Collection>> _authorities = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<(string Cluster, string Destination, string Role), DateTimeOffset> _expirations = new();
    private readonly ConcurrentDictionary<(string Certificate, string Key), Loaded<SslStreamCertificateContext>> _clientCertificates = new();

    /// <summary>
    /// The TLS settings of cluster nodes; relative file paths in them are read from <paramref name="contentRoot"/> (the
    /// host's directory by default), as every certificate path in the configuration is.
    /// </summary>
    public NodeTls(string? contentRoot = null) => _contentRoot = contentRoot ?? AppContext.BaseDirectory;

    /// <summary>The options of a TLS session to <paramref name="destination"/> of <paramref name="cluster"/> at <paramref name="address"/>.</summary>
    /// <exception cref="InvalidOperationException">A configured certificate file cannot be read (it was valid when the configuration was loaded).</exception>
    public SslClientAuthenticationOptions ClientOptions(ClusterConfig cluster, DestinationConfig destination, TcpAddress address)
    {
        ArgumentNullException.ThrowIfNull(cluster);
        ArgumentNullException.ThrowIfNull(destination);
        var metadata = cluster.Metadata;
        var serverName = destination.Metadata?.GetValueOrDefault(MetadataKeys.TlsServerName);
        var clusterId = cluster.ClusterId;
        var options = new SslClientAuthenticationOptions
        {
            TargetHost = string.IsNullOrEmpty(serverName) ? address.Host : serverName,
            CertificateRevocationCheckMode = X509RevocationMode.NoCheck,
        };

        if (metadata?.GetValueOrDefault(MetadataKeys.TlsCaPath) is { Length: > 0 } caPath)
        {
            var policy = new X509ChainPolicy
            {
                TrustMode = X509ChainTrustMode.CustomRootTrust,
                RevocationMode = X509RevocationMode.NoCheck,
            };
            policy.CustomTrustStore.AddRange(Authorities(ServerCertificateFile.FullPath(caPath, _contentRoot)));
            options.CertificateChainPolicy = policy;
        }

        if (metadata?.GetValueOrDefault(MetadataKeys.TlsClientCertificatePath) is { Length: > 0 } certificatePath
            && metadata.GetValueOrDefault(MetadataKeys.TlsClientKeyPath) is { Length: > 0 } keyPath)
        {
            options.ClientCertificateContext = ClientCertificate(ServerCertificateFile.FullPath(certificatePath, _contentRoot), ServerCertificateFile.FullPath(keyPath, _contentRoot));
            _expirations[(clusterId, string.Empty, ClientRole)] = new DateTimeOffset(options.ClientCertificateContext.TargetCertificate.NotAfter.ToUniversalTime());
        }

        return options;
    }

    /// <summary>
    /// The settings <see cref="ClientOptions"/> builds a session from (server name, CA, client certificate and key paths),
    /// as one string: connections opened with different settings do not compare equal.
    /// </summary>
    internal static string ClientSettings(ClusterConfig cluster, DestinationConfig destination)
    {
        var metadata = cluster.Metadata;
        return string.Join(
            '\n',
            destination.Metadata?.GetValueOrDefault(MetadataKeys.TlsServerName),
            metadata?.GetValueOrDefault(MetadataKeys.TlsCaPath),
            metadata?.GetValueOrDefault(MetadataKeys.TlsClientCertificatePath),
            metadata?.GetValueOrDefault(MetadataKeys.TlsClientKeyPath));
    }

    /// <summary>
    /// Opens a TLS session over the connected <paramref name="socket"/> (the session does not own it: the caller disposes
    /// the session, then the socket). On failure nothing is left open but the socket.
    /// </summary>
    /// <exception cref="System.Security.Authentication.AuthenticationException">The node's certificate was not accepted, or no protocol was agreed.</exception>
    /// <exception cref="IOException">The node closed the connection during the handshake.</exception>
    public static async ValueTask<SslStream> OpenAsync(System.Net.Sockets.Socket socket, SslClientAuthenticationOptions options, CancellationToken cancellationToken)
    {
        var session = new SslStream(new System.Net.Sockets.NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
        try
        {
            await session.AuthenticateAsClientAsync(options, cancellationToken);
            return session;
        }
        catch
        {
            await session.DisposeAsync();
            throw;
        }
    }

    /// <summary>
    /// Notes the certificate a node presented in a TLS session just established (after the handshake: a validation
    /// callback would replace the platform's reason for a refused certificate with its own message).
    /// </summary>
    public void Observe(string clusterId, string destinationId, X509Certificate? certificate)
    {
        if (certificate is X509Certificate2 presented)
        {
            _expirations[(clusterId, destinationId, NodeRole)] = new DateTimeOffset(presented.NotAfter.ToUniversalTime());
        }
    }

    /// <summary><c>role</c> of a node's certificate in <see cref="Expirations"/>.</summary>
    public const string NodeRole = "node";

    /// <summary>
    /// Added to the failure of a TLS session that ended right after its handshake (DICOM before A-ASSOCIATE-AC, MLLP on
    /// a new connection's first message): with TLS 1.3 a node that refuses ImagingProxy's client certificate says so
    /// only then.
    /// </summary>
    public const string ClientCertificateRefusedHint = "(a node that requires a client certificate ends the session when it gets none it trusts: see " + MetadataKeys.TlsClientCertificatePath + ")";

    /// <summary><c>role</c> of ImagingProxy's client certificate for a cluster's nodes in <see cref="Expirations"/> (no destination).</summary>
    public const string ClientRole = "client";

    /// <summary>
    /// When the certificates last seen in TLS sessions to the nodes expire: each node's (from its last established
    /// session) and ImagingProxy's client certificate per cluster. For the <c>imagingproxy.tls.certificate.expiration_timestamp</c> gauge.
    /// </summary>
    public IEnumerable<(string Cluster, string Destination, string Role, DateTimeOffset NotAfter)> Expirations()
    {
        foreach (var (key, notAfter) in _expirations)
        {
            yield return (key.Cluster, key.Destination, key.Role, notAfter);
        }
    }


    /// <summary>
    /// Checks a cluster's TLS settings: <c>tls://</c> destinations and <c>Tls.*</c> metadata only in DICOM and MLLP
    /// clusters, readable PEM files (a relative path read from <paramref name="contentRoot"/>), a client certificate with
    /// its key.
    /// </summary>
    internal static void Validate(IConfigurationSection cluster, ClusterProtocol protocol, List<string> errors, string contentRoot)
    {
        foreach (var destination in cluster.GetSection("Destinations").GetChildren())
        {
            if (!TcpAddress.TryParse(destination["Address"], out var address) || !address.Tls)
            {
                continue;
            }

            var serverName = destination.GetSection("Metadata")[MetadataKeys.TlsServerName];
            if (serverName is not null && string.IsNullOrWhiteSpace(serverName))
            {
                errors.Add($"{destination.Path}:Metadata:{MetadataKeys.TlsServerName}: empty (omit it to use the address's host).");
            }
        }

        var metadata = cluster.GetSection("Metadata");
        var caPath = metadata[MetadataKeys.TlsCaPath];
        var certificatePath = metadata[MetadataKeys.TlsClientCertificatePath];
        var keyPath = metadata[MetadataKeys.TlsClientKeyPath];
        if (caPath is null && certificatePath is null && keyPath is null)
        {
            return;
        }

        if (protocol == ClusterProtocol.Http)
        {
            errors.Add($"{metadata.Path}: Tls.* settings apply to the tls:// destinations of Dicom and Mllp clusters (an Http cluster configures TLS under HttpClient).");
            return;
        }

        if (caPath is not null)
        {
            try
            {
                if (LoadAuthorities(ServerCertificateFile.FullPath(caPath, contentRoot)).Count == 0)
                {
                    errors.Add($"{metadata.Path}:{MetadataKeys.TlsCaPath}: '{caPath}' holds no PEM certificate.");
                }
            }
            catch (Exception ex) when (IsFileError(ex))
            {
                errors.Add($"{metadata.Path}:{MetadataKeys.TlsCaPath}: cannot read '{caPath}': {ex.Message}");
            }
        }

        if ((certificatePath is null) != (keyPath is null))
        {
            errors.Add($"{metadata.Path}: {MetadataKeys.TlsClientCertificatePath} and {MetadataKeys.TlsClientKeyPath} go together (a PEM certificate and its private key).");
        }
        else if (certificatePath is not null)
        {
            try
            {
                using var certificate = X509Certificate2.CreateFromPemFile(ServerCertificateFile.FullPath(certificatePath, contentRoot), ServerCertificateFile.FullPath(keyPath!, contentRoot));
            }
            catch (Exception ex) when (IsFileError(ex))
            {
                errors.Add($"{metadata.Path}:{MetadataKeys.TlsClientCertificatePath}: cannot load '{certificatePath}' with key '{keyPath}': {ex.Message}");
            }
        }
    }

    private X509Certificate2Collection Authorities(string path)
    {
        var stamp = Stamp(path);
        if (_authorities.TryGetValue(path, out var loaded) && loaded.Stamp == stamp)
        {
            return loaded.Value;
        }

        var authorities = Load(() => LoadAuthorities(path));
        _authorities[path] = new Loaded<X509Certificate2Collection>(stamp, authorities);
        return authorities;
    }

    private SslStreamCertificateContext ClientCertificate(string certificatePath, string keyPath)
    {
        var stamp = HashCode.Combine(Stamp(certificatePath), Stamp(keyPath));
        if (_clientCertificates.TryGetValue((certificatePath, keyPath), out var loaded) && loaded.Stamp == stamp)
        {
            return loaded.Value;
        }

        var context = Load(() => SslStreamCertificateContext.Create(X509Certificate2.CreateFromPemFile(certificatePath, keyPath), Intermediates(certificatePath), offline: true));
        _clientCertificates[(certificatePath, keyPath)] = new Loaded<SslStreamCertificateContext>(stamp, context);
        return context;
    }

    /// <summary>
    /// The certificates after the first in a client certificate's PEM file (its issuing CAs, as a listener's PEM file
    /// carries them): sent with the certificate, so a node that trusts only the hospital's root accepts one issued by an
    /// intermediate CA.
    /// </summary>
    private static X509Certificate2Collection Intermediates(string certificatePath)
    {
        var all = new X509Certificate2Collection();
        all.ImportFromPemFile(certificatePath);
        var intermediates = new X509Certificate2Collection();
        for (var i = 1; i < all.Count; i++)
        {
            intermediates.Add(all[i]);
        }

        all[0].Dispose();
        return intermediates;
    }

    private static X509Certificate2Collection LoadAuthorities(string path)
    {
        var authorities = new X509Certificate2Collection();
        authorities.ImportFromPemFile(path);
        return authorities;
    }

    private static T Load<T>(Func<T> load)
    {
        try
        {
            return load();
        }
        catch (Exception ex) when (IsFileError(ex))
        {
            throw new InvalidOperationException(ex.Message, ex);
        }
    }

    /// <summary>
    /// Which file a path names now and when it last changed (0 when it is missing: loading it then fails with the
    /// reason). Symbolic links count, the file's and its directories': in a Kubernetes Secret volume <c>ca.crt</c> is a
    /// link to <c>..data/ca.crt</c> that never changes itself, while the kubelet points the <c>..data</c> link at a new
    /// directory on each rotation.
    /// </summary>
    internal static long Stamp(string path)
    {
        var stamp = new HashCode();
        FileSystemInfo info = new FileInfo(path);
        if (info.LinkTarget is { } target)
        {
            stamp.Add(target);
            info = info.ResolveLinkTarget(returnFinalTarget: true) ?? info;
        }

        if (info is not FileInfo { Exists: true } file)
        {
            return 0;
        }

        for (var directory = file.Directory; directory is not null; directory = directory.Parent)
        {
            stamp.Add(directory.LinkTarget);
        }

        stamp.Add(file.FullName);
        stamp.Add(file.LastWriteTimeUtc.Ticks);
        stamp.Add(file.Length);
        return stamp.ToHashCode();
    }

    private static bool IsFileError(Exception ex)
        => ex is IOException or UnauthorizedAccessException or System.Security.Cryptography.CryptographicException or ArgumentException;

    private sealed record Loaded<T>(long Stamp, T Value);
}
