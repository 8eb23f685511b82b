using System.Diagnostics.Metrics;
using System.IO.Pipelines;
using System.Text;
using ImagingProxy.Configuration;
using ImagingProxy.Hosting;
using ImagingProxy.Mllp;
using ImagingProxy.Telemetry;
using ImagingProxy.Tests.Support;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Mllp;

/// <summary>
/// One MllpConnectionHandler over in-memory pipes, with a Kestrel-like close request and abort, routing every message to
/// cluster "c" whose destinations are given (in-process <see cref="FakeHl7Node"/>s or closed ports).
/// </summary>
internal sealed class MllpHandlerHarness : IAsyncDisposable
{
    /// <summary>
    /// Cluster <c>c</c> with one destination per address (d0, d1 ...), all available, with the given destination metadata
    /// by place; passive health on when asked.
    /// </summary>
    private static ClusterState NewCluster(string[] destinations, bool passiveHealth, IReadOnlyDictionary<string, string>? metadata, IReadOnlyList<IReadOnlyDictionary<string, string>?>? destinationMetadata)
    {
        var config = new ClusterConfig
        {
            ClusterId = "c",
            Metadata = metadata,
            HealthCheck = passiveHealth ? new HealthCheckConfig { Passive = new PassiveHealthCheckConfig { Enabled = true } } : null,
        };
        var cluster = new ClusterState("c", new ClusterModel(config, new HttpMessageInvoker(new HttpClientHandler())));
        var states = destinations.Select((address, i) => new DestinationState($"d{i}", new DestinationModel(new DestinationConfig { Address = address, Metadata = destinationMetadata?[i] }))).ToArray();
        cluster.DestinationsState = new ClusterDestinationsState(states, states);
        return cluster;
    }

    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly Pipe _toProxy = new();
    private readonly Pipe _fromProxy = new();
    private readonly MllpFrameReader _frames = new();
    private readonly CancellationTokenSource _closeRequested = new();
    private readonly CancellationTokenSource _closed = new();
    private readonly Lifetime _lifetime = new();
    private readonly ConnectionDrain _drain;
    private readonly DefaultConnectionContext _connection;
    private readonly string? _listener;

    // health: passive health updates, and the cluster then enables passive health (none when null). clusterMetadata: the
    // cluster's metadata as the forwarder reads it (settings only reach the configuration gate).
    public MllpHandlerHarness(
        string[] destinations, TimeProvider? time = null, Dictionary<string, string?>? settings = null, TagValueLimiter? messageTypes = null,
        IDestinationHealthUpdater? health = null, IReadOnlyDictionary<string, string>? clusterMetadata = null,
        IReadOnlyList<IReadOnlyDictionary<string, string>?>? destinationMetadata = null, ImagingProxy.Balancing.DestinationLimits? limits = null,
        string? listener = null, Microsoft.Extensions.Logging.ILogger<MllpConnectionHandler>? logger = null,
        Microsoft.Extensions.Logging.ILogger<MllpForwarder>? forwarderLogger = null)
    {
        _listener = listener;
        time ??= TimeProvider.System;
        var values = new Dictionary<string, string?>
        {
            ["ReverseProxy:Clusters:c:Metadata:Protocol"] = "Mllp",
            ["ReverseProxy:Clusters:c:Destinations:d0:Address"] = "tcp://127.0.0.1:1",
            ["ImagingProxy:Mllp:Routes:0:MessageType"] = "*",
            ["ImagingProxy:Mllp:Routes:0:Cluster"] = "c",
        };
        foreach (var (key, value) in settings ?? [])
        {
            values[key] = value;
        }

        var gate = new ConfigurationGate(new ConfigurationBuilder().AddInMemoryCollection(values).Build());
        gate.ApplyInitial();
        Services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        Pool = new MllpNodePool(time);
        Metrics = new MllpProxyMetrics(Services.GetRequiredService<IMeterFactory>(), messageTypes ?? new TagValueLimiter(null, 50));
        var forwarder = new MllpForwarder(Pool, health ?? new NoHealthUpdates(), Metrics, time, forwarderLogger ?? NullLogger<MllpForwarder>.Instance, limits: limits);
        _drain = new ConnectionDrain(_lifetime, Options.Create(new HostOptions { ShutdownTimeout = TimeSpan.Zero }), time, NullLogger<ConnectionDrain>.Instance);
        var handler = ConnectionHandler = new MllpConnectionHandler(new MllpProxyConfiguration(gate), new FixedProxyState(Cluster = NewCluster(destinations, health is not null, clusterMetadata, destinationMetadata)), forwarder, Pool, Metrics, time, _lifetime, _drain, logger ?? NullLogger<MllpConnectionHandler>.Instance);
        _connection = new DefaultConnectionContext("test-1", new Duplex(_toProxy.Reader, _fromProxy.Writer), new Duplex(_fromProxy.Reader, _toProxy.Writer))
        {
            ConnectionClosed = _closed.Token,
        };
        _connection.Features.Set<IConnectionLifetimeNotificationFeature>(new CloseNotification(_closeRequested));
        if (listener is not null)
        {
            _connection.Features.Set<IProxyListenerFeature>(new ListenerName(listener));
        }
        Handler = Task.Run(async () =>
        {
            try
            {
                await handler.OnConnectedAsync(_connection);
            }
            finally
            {
                await _fromProxy.Writer.CompleteAsync(); // as Kestrel closes the socket when the handler returns
            }
        });
    }

    public ServiceProvider Services { get; }

    /// <summary>The cluster the handler routes to (tests change its available destinations).</summary>
    public ClusterState Cluster { get; }

    /// <summary>The handler under test (its connection is on listener "", the harness sets no listener feature).</summary>
    public MllpConnectionHandler ConnectionHandler { get; }

    public MllpNodePool Pool { get; }

    public MllpProxyMetrics Metrics { get; }

    public Task Handler { get; }

    public static byte[] Message(string controlId, string type = "ORM^O01^ORM_O01", string extraMsh = "")
        => Encoding.ASCII.GetBytes($"MSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000||{type}|{controlId}|P|2.5.1{extraMsh}\rPID|1\r");

    /// <summary>Another connection to the same handler, on the same listener, over <paramref name="transport"/>; completes when its handler returns.</summary>
    public Task ConnectAnother(string connectionId, IDuplexPipe transport)
    {
        var connection = new DefaultConnectionContext(connectionId, transport, transport);
        if (_listener is not null)
        {
            connection.Features.Set<IProxyListenerFeature>(new ListenerName(_listener));
        }

        return Task.Run(() => ConnectionHandler.OnConnectedAsync(connection));
    }

    /// <summary>What Kestrel does on SIGTERM: <c>IConnectionLifetimeNotificationFeature.RequestClose()</c>.</summary>
    public void RequestClose() => _closeRequested.Cancel();

    /// <summary>
    /// The drain deadline passing (<see cref="ConnectionDrain.Deadline"/>: the host stops with a shutdown timeout of 0), then
    /// what Kestrel does at the shutdown timeout: abort the transport (the input fails, <c>ConnectionClosed</c> fires).
    /// </summary>
    public void DeadlinePasses()
    {
        _lifetime.StopApplication();
        Abort(new ConnectionAbortedException("The server is shutting down."));
    }

    /// <summary>The client resets the connection: the input fails, the output goes nowhere, <c>ConnectionClosed</c> fires.</summary>
    public void Reset()
    {
        _fromProxy.Reader.Complete();
        Abort(new ConnectionResetException("Connection reset by peer"));
    }

    /// <summary>
    /// The client closes its sending side (FIN) and goes on reading: the input completes after what was sent, and Kestrel
    /// fires <c>ConnectionClosed</c> as its receive loop ends.
    /// </summary>
    public async Task HalfCloseAsync()
    {
        await _toProxy.Writer.CompleteAsync();
        await _closed.CancelAsync();
    }

    public async Task SendAsync(byte[] message)
    {
        MllpFrameWriter.Write(_toProxy.Writer, message);
        await _toProxy.Writer.FlushAsync();
    }

    public async Task SendRawAsync(ReadOnlyMemory<byte> bytes) => await _toProxy.Writer.WriteAsync(bytes);

    /// <summary>The next reply as text, or null when the handler completed its output (closed).</summary>
    public async Task<string?> ReplyAsync()
    {
        var reader = _fromProxy.Reader;
        while (true)
        {
            var result = await reader.ReadAsync().AsTask().WaitAsync(Timeout);
            if (TryFrame(result, out var text))
            {
                return text;
            }

            if (result.IsCompleted)
            {
                return null;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _toProxy.Writer.CompleteAsync();
        await _closed.CancelAsync();
        _lifetime.StopApplication(); // the drain deadline ends a delivery still waiting for its node
        await Handler.WaitAsync(Timeout);
        await Pool.DisposeAsync();
        await Services.DisposeAsync();
        _closeRequested.Dispose();
        _closed.Dispose();
        _drain.Dispose();
    }

    private void Abort(Exception reason)
    {
        _toProxy.Writer.Complete(reason);
        _closed.Cancel();
    }

    private bool TryFrame(ReadResult result, out string? text)
    {
        var buffer = result.Buffer;
        if (_frames.TryReadFrame(ref buffer, out var frame) == MllpReadResult.Frame)
        {
            text = Encoding.ASCII.GetString(frame);
            _fromProxy.Reader.AdvanceTo(buffer.Start);
            return true;
        }

        _fromProxy.Reader.AdvanceTo(buffer.Start, buffer.End);
        text = null;
        return false;
    }

    private sealed class ListenerName(string name) : IProxyListenerFeature
    {
        public string Name { get; } = name;
    }

    private sealed class CloseNotification(CancellationTokenSource source) : IConnectionLifetimeNotificationFeature
    {
        public CancellationToken ConnectionClosedRequested { get; set; } = source.Token;

        public void RequestClose() => source.Cancel();
    }

    internal sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
    internal sealed class NoHealthUpdates : IDestinationHealthUpdater
    {
        public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthStates)
        {
        }

        public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
        {
        }
    }

    internal sealed class Lifetime : IHostApplicationLifetime
    {
        private readonly CancellationTokenSource _stopping = new();

        public CancellationToken ApplicationStarted => CancellationToken.None;

        public CancellationToken ApplicationStopping => _stopping.Token;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication() => _stopping.Cancel();
    }
}
