using System.Buffers;
using System.Diagnostics.Metrics;
using System.Net;
using System.Net.Sockets;
using ImagingProxy.Hosting;
using ImagingProxy.Telemetry;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Time.Testing;

namespace ImagingProxy.Tests.Hosting;

/// <summary>
/// A connection whose handler returned while its last bytes wait for a client that reads nothing is aborted after the
/// grace, on Kestrel's real socket transport; a client that reads gets its bytes and the connection closes unaborted.
/// </summary>
public sealed class RawConnectionCloseGuardTests
{
    /// <summary>More than the loopback socket buffers of both ends hold while the client reads nothing.</summary>
    private const int LastBytes = 16 * 1024 * 1024;

    [Fact(Timeout = 60_000)]
    public async Task A_client_that_reads_nothing_of_the_last_bytes_is_aborted_after_the_grace()
    {
        await using var server = await GuardedServer.StartAsync();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await client.ConnectAsync(IPAddress.Loopback, server.Port);

        var connection = await server.Armed.Task.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.False(connection.ConnectionClosed.IsCancellationRequested);
        server.Time.Advance(RawConnectionCloseGuard.Grace);

        await WhenCancelled(connection.ConnectionClosed).WaitAsync(TimeSpan.FromSeconds(20));
        var timeout = Assert.Single(server.CloseTimeouts.GetMeasurementSnapshot());
        Assert.Equal("dicom-in", timeout.Tags["listener"]);
        Assert.Equal("dicom", timeout.Tags["protocol"]);
    }

    [Fact(Timeout = 60_000)]
    public async Task A_client_that_closed_its_side_and_reads_nothing_is_aborted_after_the_grace()
    {
        // Kestrel has signalled ConnectionClosed (the FIN) before the handler returns; the sends are still pending.
        await using var server = await GuardedServer.StartAsync(afterClientFin: true);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await client.ConnectAsync(IPAddress.Loopback, server.Port);
        client.Shutdown(SocketShutdown.Send);

        await server.Armed.Task.WaitAsync(TimeSpan.FromSeconds(20));
        server.Time.Advance(RawConnectionCloseGuard.Grace);

        await server.CloseTimeouts.WaitForMeasurementsAsync(1, TimeSpan.FromSeconds(20));
        var buffer = new byte[64 * 1024];
        var received = 0L;
        while (true)
        {
            int read;
            try
            {
                read = await client.ReceiveAsync(buffer.AsMemory()).AsTask().WaitAsync(TimeSpan.FromSeconds(20));
            }
            catch (SocketException)
            {
                break; // reset by the abort
            }

            if (read == 0)
            {
                break;
            }

            received += read;
        }

        Assert.True(received < LastBytes, $"the client got all {received} bytes: the connection was not aborted");
    }

    [Fact(Timeout = 60_000)]
    public async Task A_client_that_reads_its_bytes_closes_without_an_abort()
    {
        await using var server = await GuardedServer.StartAsync();
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await client.ConnectAsync(IPAddress.Loopback, server.Port);

        var received = 0L;
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = await client.ReceiveAsync(buffer)) > 0)
        {
            received += read;
        }

        var connection = await server.Armed.Task.WaitAsync(TimeSpan.FromSeconds(20));
        await WhenCancelled(connection.ConnectionClosed).WaitAsync(TimeSpan.FromSeconds(20));

        // ConnectionClosed comes with the client's FIN; Kestrel disposes the socket a moment later, with no event to
        // await: the guard's own test of a closed connection is looked at, within a bound, before the grace is passed.
        var socket = connection.Features.Get<IConnectionSocketFeature>()!.Socket;
        using (var bound = new CancellationTokenSource(TimeSpan.FromSeconds(20)))
        {
            while (!socket.SafeHandle.IsClosed)
            {
                await Task.Delay(10, bound.Token);
            }
        }

        server.Time.Advance(RawConnectionCloseGuard.Grace * 2);
        Assert.Equal(LastBytes, received);
        Assert.Empty(server.CloseTimeouts.GetMeasurementSnapshot());
        Assert.Equal(0, server.Guard.Watched);
    }

    [Fact(Timeout = 60_000)]
    public async Task Connections_returned_at_different_times_are_each_aborted_after_their_own_grace()
    {
        await using var server = await GuardedServer.StartAsync();
        using var first = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await first.ConnectAsync(IPAddress.Loopback, server.Port);
        var firstConnection = await server.NextArmedAsync();
        server.Time.Advance(TimeSpan.FromSeconds(3));

        using var second = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { ReceiveBufferSize = 4096 };
        await second.ConnectAsync(IPAddress.Loopback, server.Port);
        var secondConnection = await server.NextArmedAsync();
        server.Time.Advance(RawConnectionCloseGuard.Grace - TimeSpan.FromSeconds(3));

        await WhenCancelled(firstConnection.ConnectionClosed).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Single(server.CloseTimeouts.GetMeasurementSnapshot());
        Assert.False(secondConnection.ConnectionClosed.IsCancellationRequested);
        Assert.Equal(1, server.Guard.Watched);

        // The second one's grace ends 3 s later; the guard looks again every SweepPeriod while a connection is watched.
        server.Time.Advance(TimeSpan.FromSeconds(3));
        await WhenCancelled(secondConnection.ConnectionClosed).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(2, server.CloseTimeouts.GetMeasurementSnapshot().Count);
        Assert.Equal(0, server.Guard.Watched);
    }

    private static Task WhenCancelled(CancellationToken token)
    {
        var cancelled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        token.UnsafeRegister(static s => ((TaskCompletionSource)s!).TrySetResult(), cancelled);
        return cancelled.Task;
    }

    /// <summary>
    /// Kestrel with one raw endpoint: the guard, then a handler that leaves <see cref="LastBytes"/> in the connection's
    /// output without waiting for them to be sent, and returns.
    /// </summary>
    private sealed class GuardedServer : IAsyncDisposable
    {
        private readonly ServiceProvider _metrics = new ServiceCollection().AddMetrics().BuildServiceProvider();
        private readonly WebApplication _app;

        private GuardedServer(bool afterClientFin)
        {
            var meters = _metrics.GetRequiredService<IMeterFactory>();
            CloseTimeouts = new MetricCollector<long>(meters, ImagingProxyTelemetry.MeterName, "imagingproxy.listener.close_timeouts");
            var guard = new RawConnectionCloseGuard("dicom-in", ProxyListener.DicomKind, new ListenerMetrics(meters), Time, NullLogger.Instance);
            guard.Armed += connection =>
            {
                Armed.TrySetResult(connection);
                _armed.Writer.TryWrite(connection);
            };
            Guard = guard;
            // Kestrel alone: no configuration files (the test directory's would add endpoints), no HTTP.
            var builder = WebApplication.CreateEmptyBuilder(new WebApplicationOptions());
            builder.WebHost.UseKestrelCore().ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0, listen =>
            {
                listen.Use(guard.Around);
                listen.Run(async connection =>
                {
                    if (afterClientFin)
                    {
                        // Kestrel signals ConnectionClosed when the client's FIN ends its receive loop.
                        await WhenCancelled(connection.ConnectionClosed);
                    }

                    // Written to the pipe, not flushed: Kestrel sends it after the handler returned (completing the pipe commits it).
                    connection.Transport.Output.Write(new byte[LastBytes]);
                });
            }));
            _app = builder.Build();
        }

        private readonly System.Threading.Channels.Channel<ConnectionContext> _armed = System.Threading.Channels.Channel.CreateUnbounded<ConnectionContext>();

        public FakeTimeProvider Time { get; } = new();

        public RawConnectionCloseGuard Guard { get; }

        /// <summary>The next connection whose handler returned and which the guard watches.</summary>
        public async Task<ConnectionContext> NextArmedAsync() => await _armed.Reader.ReadAsync().AsTask().WaitAsync(TimeSpan.FromSeconds(20));

        public TaskCompletionSource<ConnectionContext> Armed { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public MetricCollector<long> CloseTimeouts { get; }

        public int Port => new Uri(_app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single()).Port;

        public static async Task<GuardedServer> StartAsync(bool afterClientFin = false)
        {
            var server = new GuardedServer(afterClientFin);
            await server._app.StartAsync();
            return server;
        }

        public async ValueTask DisposeAsync()
        {
            await _app.DisposeAsync();
            CloseTimeouts.Dispose();
            await _metrics.DisposeAsync();
        }
    }
}
