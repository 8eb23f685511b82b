using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace ImagingProxy.Configuration;

/// <summary>
/// A <c>tcp://host:port</c> destination address of a DICOM or MLLP cluster, or <c>tls://host:port</c> for a node that
/// speaks TLS (DICOM TLS, e.g. on port 2762): ImagingProxy then opens a TLS session to it (<see cref="NodeTls"/>).
/// </summary>
public readonly record struct TcpAddress(string Host, int Port, bool Tls = false)
{
    /// <summary>The scheme of a plain TCP destination.</summary>
    public const string TcpScheme = "tcp";

    /// <summary>The scheme of a destination reached over TLS.</summary>
    public const string TlsScheme = "tls";

    /// <summary>Addresses parsed so far (a destination's address is parsed at each connect): at most <see cref="MaxCached"/>.</summary>
    private static readonly ConcurrentDictionary<string, TcpAddress> s_parsed = new(StringComparer.Ordinal);

    private const int MaxCached = 1024;

    public static bool TryParse(string? text, out TcpAddress address)
    {
        if (text is not null && s_parsed.TryGetValue(text, out address))
        {
            return true;
        }

        if (!TryParseText(text, out address))
        {
            return false;
        }

        if (s_parsed.Count < MaxCached)
        {
            s_parsed.TryAdd(text!, address);
        }

        return true;
    }

    private static bool TryParseText(string? text, out TcpAddress address)
    {
        address = default;
        if (string.IsNullOrWhiteSpace(text) || !Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != TcpScheme && uri.Scheme != TlsScheme))
        {
            return false;
        }

        if (uri.IsDefaultPort || uri.Port < 1 || uri.Port > 65535 || string.IsNullOrEmpty(uri.Host) || (uri.AbsolutePath != "/" && uri.AbsolutePath.Length > 0))
        {
            return false;
        }

        address = new TcpAddress(uri.Host.Trim('[', ']'), uri.Port, uri.Scheme == TlsScheme);
        return true;
    }

    /// <summary>
    /// A TCP socket for this address, <c>NoDelay</c> on (with Nagle on, each PDU or frame waits for the peer's delayed
    /// ACK; peers.md). For an IP literal the socket is of its family, which spares a dual-mode socket's four
    /// IPV6_V6ONLY set-up calls per connection; a host name gets a dual-mode socket.
    /// </summary>
    public Socket NewSocket()
    {
        var socket = IPAddress.TryParse(Host, out var ip)
            ? new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp)
            : new Socket(SocketType.Stream, ProtocolType.Tcp);
        socket.NoDelay = true;
        return socket;
    }

    public override string ToString()
    {
        var scheme = Tls ? TlsScheme : TcpScheme;
        return Host.Contains(':', StringComparison.Ordinal) ? $"{scheme}://[{Host}]:{Port}" : $"{scheme}://{Host}:{Port}";
    }
}
