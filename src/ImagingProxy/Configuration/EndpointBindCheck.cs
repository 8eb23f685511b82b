using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Configuration;

/// <summary>
/// Before a reload moves a Kestrel endpoint (<c>Kestrel:Endpoints:NAME:Url</c>) to another address, that address is
/// tried: Kestrel rebinds an endpoint whose Url changed after it stopped the old one, and a bind that fails then is only
/// logged ("Unable to bind ... on config reload"), the endpoint left with no socket while the reload counts as applied.
/// An address in use (another process), not on this host, or not permitted rejects the reload instead, and the endpoint
/// stays where it is. An address in use only by a running endpoint that moves or goes away in the same reload passes
/// (Kestrel frees it first); port 0 always binds, except on localhost, which Kestrel refuses. Another process could still
/// take the port between this check and Kestrel's bind: the window is short.
/// </summary>
public static class EndpointBindCheck
{
    /// <summary>The problems of the endpoints <paramref name="candidate"/> moves, against <paramref name="running"/>.</summary>
    public static List<string> Problems(IConfiguration running, IConfiguration candidate)
    {
        // Ports Kestrel frees in this same rebind: those of running endpoints that move or go away.
        var freed = new HashSet<int>();
        foreach (var endpoint in running.GetSection("Kestrel:Endpoints").GetChildren())
        {
            var url = endpoint["Url"];
            if (!string.Equals(url, candidate[$"Kestrel:Endpoints:{endpoint.Key}:Url"], StringComparison.OrdinalIgnoreCase) && TryParse(url, out var address))
            {
                freed.Add(address.Port);
            }
        }

        var problems = new List<string>();
        foreach (var endpoint in candidate.GetSection("Kestrel:Endpoints").GetChildren())
        {
            var url = endpoint["Url"];
            if (string.Equals(url, running[$"Kestrel:Endpoints:{endpoint.Key}:Url"], StringComparison.OrdinalIgnoreCase) || !TryParse(url, out var address))
            {
                continue;
            }

            if (address.Port == 0 && string.Equals(address.Host, "localhost", StringComparison.OrdinalIgnoreCase))
            {
                problems.Add($"{endpoint.Path}:Url: '{url}': Kestrel cannot bind localhost to a dynamic port (0); name 127.0.0.1 or [::1].");
                continue;
            }

            if (address.Port != 0 && TryBind(address) is { } error && !(error.Code == SocketError.AddressAlreadyInUse && freed.Contains(address.Port)))
            {
                problems.Add($"{endpoint.Path}:Url: '{url}' cannot be bound ({error.Text}); the endpoint stays on its current address.");
            }
        }

        return problems;
    }

    private static bool TryParse(string? url, out BindingAddress address)
    {
        address = null!;
        if (string.IsNullOrWhiteSpace(url))
        {
            return false;
        }

        try
        {
            address = BindingAddress.Parse(url);
            return !address.IsUnixPipe && !address.IsNamedPipe;
        }
        catch (FormatException)
        {
            return false;
        }
    }

    /// <summary>
    /// Binds a socket to the address as Kestrel would (an IP literal as it is, localhost on 127.0.0.1, any other host on
    /// all addresses: IPv6 dual mode where the host has IPv6) and closes it; the error when that fails.
    /// </summary>
    private static (SocketError Code, string Text)? TryBind(BindingAddress address)
    {
        var ip = string.Equals(address.Host, "localhost", StringComparison.OrdinalIgnoreCase) ? IPAddress.Loopback
            : IPAddress.TryParse(address.Host.Trim('[', ']'), out var literal) ? literal
            : Socket.OSSupportsIPv6 ? IPAddress.IPv6Any : IPAddress.Any;
        try
        {
            using var socket = new Socket(ip.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            if (ip.Equals(IPAddress.IPv6Any))
            {
                socket.DualMode = true;
            }

            socket.Bind(new IPEndPoint(ip, address.Port));
            return null;
        }
        catch (SocketException ex)
        {
            return (ex.SocketErrorCode, ex.SocketErrorCode switch
            {
                SocketError.AddressAlreadyInUse => "address already in use",
                SocketError.AddressNotAvailable => "the address is not on this host",
                SocketError.AccessDenied => "not permitted",
                _ => ex.Message,
            });
        }
    }
}
