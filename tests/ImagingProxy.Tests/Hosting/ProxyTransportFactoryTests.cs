using System.Net;
using System.Net.Sockets;
using ImagingProxy.Dicom;
using ImagingProxy.Hosting;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;

namespace ImagingProxy.Tests.Hosting;

public class ProxyTransportFactoryTests
{
    [Fact]
    public async Task Raw_listeners_bind_through_the_raw_transport_and_only_a_hooked_one_sees_connections_before_Kestrel()
    {
        var registry = new ListenerRegistry();
        var dicom = Listener(registry, "dicom", ProxyListener.DicomKind, 1104);
        var hl7 = Listener(registry, "hl7", ProxyListener.MllpKind, 2575);
        var viewers = Listener(registry, "viewers", ProxyListener.HttpKind, 1104); // the same address and port as "dicom"
        var seen = new List<string>();
        var http = new OneConnectionTransport("http", seen);
        var raw = new OneConnectionTransport("raw", seen);
        var factory = new ProxyTransportFactory(http, raw, registry, listener =>
            listener.Name == "dicom" ? connection => seen.Add("hook " + connection.ConnectionId) : null, NullLogger<ProxyTransportFactory>.Instance);

        await using var dicomListener = await factory.BindAsync(dicom.Options.EndPoint);
        await using var hl7Listener = await factory.BindAsync(hl7.Options.EndPoint);
        await using var viewersListener = await factory.BindAsync(viewers.Options.EndPoint);
        Assert.Equal([viewers.Options.EndPoint], http.Bound);
        Assert.Equal([dicom.Options.EndPoint, hl7.Options.EndPoint], raw.Bound);

        var accepted = await dicomListener.AcceptAsync();
        seen.Add("kestrel " + accepted!.ConnectionId);
        await hl7Listener.AcceptAsync();

        Assert.Equal(["raw accepts raw-1104", "hook raw-1104", "kestrel raw-1104", "raw accepts raw-2575"], seen);
    }

    [Fact]
    public async Task A_hook_that_throws_is_logged_and_the_connection_still_goes_to_Kestrel()
    {
        var registry = new ListenerRegistry();
        var dicom = Listener(registry, "dicom", ProxyListener.DicomKind, 104);
        var seen = new List<string>();
        var raw = new OneConnectionTransport("raw", seen);
        var logger = new FakeLogger<ProxyTransportFactory>();
        var factory = new ProxyTransportFactory(new OneConnectionTransport("http", seen), raw, registry, _ => _ => throw new InvalidOperationException("boom"), logger);

        await using var listener = await factory.BindAsync(dicom.Options.EndPoint);
        var accepted = await listener.AcceptAsync();

        Assert.Equal("raw-104", accepted!.ConnectionId);
        var record = Assert.Single(logger.Collector.GetSnapshot());
        Assert.Equal(LogLevel.Error, record.Level);
        Assert.IsType<InvalidOperationException>(record.Exception);
        Assert.Contains("raw-104", record.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_bind_refused_by_the_system_names_the_listener_and_its_address_and_stays_a_socket_error()
    {
        var registry = new ListenerRegistry();
        var dicom = Listener(registry, "dicom", ProxyListener.DicomKind, 104);
        var viewers = Listener(registry, "Viewers", ProxyListener.HttpKind, 443);
        var refusing = new RefusingTransport(SocketError.AccessDenied);
        var factory = new ProxyTransportFactory(refusing, refusing, registry, _ => null, NullLogger<ProxyTransportFactory>.Instance);

        // A SocketException still: Kestrel's "localhost" and "*" endpoints try their other address after one.
        var raw = await Assert.ThrowsAsync<SocketException>(async () => await factory.BindAsync(dicom.Options.EndPoint));
        var http = await Assert.ThrowsAsync<SocketException>(async () => await factory.BindAsync(viewers.Options.EndPoint));
        var unknown = await Assert.ThrowsAsync<SocketException>(async () => await factory.BindAsync(new IPEndPoint(IPAddress.Loopback, 80)));

        Assert.Equal(SocketError.AccessDenied, raw.SocketErrorCode);
        Assert.StartsWith("Listener 'dicom' (Dicom) could not bind 127.0.0.1:104: ", raw.Message, StringComparison.Ordinal);
        Assert.Contains("net.ipv4.ip_unprivileged_port_start", raw.Message, StringComparison.Ordinal);
        Assert.StartsWith("Listener 'Viewers' (Http) could not bind 127.0.0.1:443: ", http.Message, StringComparison.Ordinal);
        Assert.StartsWith("Address could not bind 127.0.0.1:80: ", unknown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Only_a_listed_dicom_listener_gets_the_accept_start_hook()
    {
        var registry = new ListenerRegistry();
        var start = new DicomAcceptStart(null!, new HashSet<string>(StringComparer.OrdinalIgnoreCase) { "dicom" });

        Assert.NotNull(start.HookFor(Listener(registry, "DICOM", ProxyListener.DicomKind, 104)));
        Assert.Null(start.HookFor(Listener(registry, "dicom-tls", ProxyListener.DicomKind, 2762)));
        Assert.Null(start.HookFor(Listener(registry, "dicom", ProxyListener.MllpKind, 2575)));
    }

    private static ProxyListener Listener(ListenerRegistry registry, string name, string kind, int port)
    {
        ListenOptions? options = null;
        new KestrelServerOptions().Listen(IPAddress.Loopback, port, o => options = o);
        var listener = new ProxyListener(name, kind, options!);
        registry.Add(listener);
        return listener;
    }

    /// <summary>A transport whose every bind fails as the socket's bind would, with <paramref name="error"/>.</summary>
    private sealed class RefusingTransport(SocketError error) : IConnectionListenerFactory
    {
        public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
            => throw new SocketException((int)error);
    }

    /// <summary>A transport whose listeners accept one connection (id "NAME-PORT") and then stop.</summary>
    private sealed class OneConnectionTransport(string name, List<string> seen) : IConnectionListenerFactory
    {
        public List<EndPoint> Bound { get; } = [];

        public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
        {
            Bound.Add(endpoint);
            return ValueTask.FromResult<IConnectionListener>(new Listener(endpoint, $"{name}-{((IPEndPoint)endpoint).Port}", name, seen));
        }

        private sealed class Listener(EndPoint endpoint, string id, string name, List<string> seen) : IConnectionListener
        {
            private bool _given;

            public EndPoint EndPoint { get; } = endpoint;

            public ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
            {
                if (_given)
                {
                    return ValueTask.FromResult<ConnectionContext?>(null);
                }

                _given = true;
                seen.Add($"{name} accepts {id}");
                return ValueTask.FromResult<ConnectionContext?>(new DefaultConnectionContext(id));
            }

            public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

            public ValueTask DisposeAsync() => ValueTask.CompletedTask;
        }
    }
}
