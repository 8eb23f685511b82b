using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using ImagingProxy.Dicom;
using ImagingProxy.Hosting;
using ImagingProxy.Telemetry;
using ImagingProxy.Tests.Support;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.Metrics.Testing;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Logging.Testing;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Time.Testing;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Health;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Dicom;

/// <summary>
/// A <see cref="DicomConnectionHandler"/> with fake time, a fake host lifetime, a <see cref="FakeLogger"/> and one cluster
/// <c>c</c> (route <c>*</c>, passive health on, its updates recorded), whose client connections are in-memory pipes
/// (<see cref="DefaultConnectionContext"/>). Destinations, when a test needs a node, are loopback <see cref="LoopbackNode"/>s.
/// </summary>
internal sealed class HandlerHarness : IAsyncDisposable
{
    private readonly ServiceProvider _services;
    private readonly ClusterState _cluster;

    public HandlerHarness(IReadOnlyDictionary<string, string?>? dicom = null, TimeSpan? shutdownTimeout = null, params int[] destinationPorts)
    {
        var data = new Dictionary<string, string?>
        {
            ["ImagingProxy:Dicom:Routes:any:CalledAeTitle"] = "*",
            ["ImagingProxy:Dicom:Routes:any:Cluster"] = "c",
        };
        foreach (var (key, value) in dicom ?? new Dictionary<string, string?>())
        {
            data["ImagingProxy:Dicom:" + key] = value;
        }

        var configuration = new ConfigurationBuilder().AddInMemoryCollection(data).Build();
        _services = new ServiceCollection().AddMetrics().BuildServiceProvider();
        Metrics = new DicomProxyMetrics(_services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), new TagValueLimiter(null, 2));
        _drain = new ConnectionDrain(Lifetime, Options.Create(new HostOptions { ShutdownTimeout = shutdownTimeout ?? TimeSpan.FromSeconds(30) }), Time, NullLogger<ConnectionDrain>.Instance);
        Drain = new DicomDrain(_drain, NullLogger<DicomDrain>.Instance);
        _cluster = new ClusterState("c", new ClusterModel(new ClusterConfig
        {
            ClusterId = "c",
            LoadBalancingPolicy = "FirstAlphabetical",
            HealthCheck = new HealthCheckConfig { Passive = new PassiveHealthCheckConfig { Enabled = true } },
        }, new HttpMessageInvoker(new HttpClientHandler())));
        var destinations = destinationPorts.Select((port, i) => new DestinationState($"d{i}", new DestinationModel(new DestinationConfig { Address = $"tcp://127.0.0.1:{port}" }))).ToList();
        _cluster.DestinationsState = new ClusterDestinationsState(destinations, destinations);
        Handler = new DicomConnectionHandler(
            new DicomProxySettings(configuration),
            new FixedProxyState(_cluster),
            new DicomDestinationSelector(),
            HealthUpdates,
            Metrics,
            Time,
            Drain,
            new DicomFailoverPipelines(Time),
            new ImagingProxy.Configuration.NodeTls(),
            Logger);
        Handler.AssociationEnded += summary => Ended.TrySetResult(summary);
    }

    /// <summary>The cluster the handler routes to (tests change its available destinations).</summary>
    public ClusterState Cluster => _cluster;

    public FakeTimeProvider Time { get; } = new();

    /// <summary>The handler's log.</summary>
    public FakeLogger<DicomConnectionHandler> Logger { get; } = new();

    /// <summary>The passive health updates the handler made.</summary>
    public RecordingHealthUpdates HealthUpdates { get; } = new();

    public FakeLifetime Lifetime { get; } = new();

    private readonly ConnectionDrain _drain;

    public DicomDrain Drain { get; }

    public DicomProxyMetrics Metrics { get; }

    public DicomConnectionHandler Handler { get; }

    public TaskCompletionSource<DicomAssociationSummary> Ended { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public MetricCollector<long> Collect(string instrument) => new(_services.GetRequiredService<System.Diagnostics.Metrics.IMeterFactory>(), DicomProxyMetrics.MeterName, instrument);

    /// <summary>Starts the handler on a new in-memory connection; the returned client is the test's end of it.</summary>
    public TestClient Connect(CancellationToken closeRequested = default) => Connect(null, closeRequested);

    /// <summary>As <see cref="Connect(CancellationToken)"/>, arriving on the named listener.</summary>
    public TestClient Connect(string? listener, CancellationToken closeRequested = default) => Connect(listener, null, null, closeRequested);

    /// <summary>
    /// As <see cref="Connect(CancellationToken)"/>, with the given options for the pipe the handler writes the client's
    /// bytes to, and <paramref name="wrapInput"/> around the reader the handler reads them from.
    /// </summary>
    public TestClient Connect(string? listener, PipeOptions? toClientOptions, Func<PipeReader, PipeReader>? wrapInput = null, CancellationToken closeRequested = default)
    {
        var toHandler = new Pipe();
        var toClient = new Pipe(toClientOptions ?? PipeOptions.Default);
        var handlerInput = wrapInput?.Invoke(toHandler.Reader) ?? toHandler.Reader;
        var context = new DefaultConnectionContext("conn-" + Guid.NewGuid().ToString("N")[..8], new Duplex(handlerInput, toClient.Writer), new Duplex(toClient.Reader, toHandler.Writer));
        if (listener is not null)
        {
            context.Features.Set<ImagingProxy.Hosting.IProxyListenerFeature>(new ListenerName(listener));
        }

        if (closeRequested.CanBeCanceled)
        {
            context.Features.Set<IConnectionLifetimeNotificationFeature>(new CloseRequest(closeRequested));
        }

        // Kestrel completes the transport when the handler returns: that is the "close" the client sees.
        var run = Task.Run(
            async () =>
            {
                try
                {
                    await Handler.OnConnectedAsync(context);
                }
                finally
                {
                    await toClient.Writer.CompleteAsync();
                    await toHandler.Reader.CompleteAsync();
                }
            },
            CancellationToken.None);
        return new TestClient(context, toClient.Reader, toHandler.Writer, run);
    }

    /// <summary>
    /// A connection as <see cref="DicomAcceptStart"/> sees it: the client's <paramref name="firstBytes"/> already arrived,
    /// the association is started at accept, and Kestrel's call of OnConnectedAsync is left to the test (<c>Dispatch</c>).
    /// </summary>
    public (TestClient Client, Func<Task> Dispatch) AcceptAndStart(byte[] firstBytes, string listener, Action<ConnectionContext>? acceptHook = null)
    {
        var toHandler = new Pipe();
        var toClient = new Pipe();
        var context = new DefaultConnectionContext("conn-" + Guid.NewGuid().ToString("N")[..8], new Duplex(toHandler.Reader, toClient.Writer), new Duplex(toClient.Reader, toHandler.Writer));
        toHandler.Writer.Write(firstBytes);
        _ = toHandler.Writer.FlushAsync().AsTask();
        if (acceptHook is not null)
        {
            acceptHook(context);
        }
        else
        {
            Handler.StartAtAccept(context, listener);
        }

        var client = new TestClient(context, toClient.Reader, toHandler.Writer, Task.CompletedTask);
        return (client, DispatchAsync);

        async Task DispatchAsync()
        {
            context.Features.Set<ImagingProxy.Hosting.IProxyListenerFeature>(new ListenerName(listener));
            try
            {
                await Handler.OnConnectedAsync(context);
            }
            finally
            {
                await toClient.Writer.CompleteAsync();
                await toHandler.Reader.CompleteAsync();
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        _drain.Dispose();
        await _services.DisposeAsync();
    }

    internal sealed class TestClient(DefaultConnectionContext context, PipeReader input, PipeWriter output, Task run)
    {
        public DefaultConnectionContext Context { get; } = context;

        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;

        /// <summary>The handler's OnConnectedAsync.</summary>
        public Task Run { get; } = run;

        public async Task SendAsync(byte[] bytes)
        {
            await Output.WriteAsync(bytes);
        }

        /// <summary>The next whole PDU from the handler, or null when it completed its output (bounded wait).</summary>
        public async Task<(PduHeader Header, byte[] Pdu)?> ReadPduAsync(TimeSpan? timeout = null)
        {
            using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
            while (true)
            {
                var read = await Input.ReadAsync(cancel.Token);
                var buffer = read.Buffer;
                var status = PduReader.TryReadPdu(ref buffer, 1 << 20, out var header, out var body);
                if (status == PduReadResult.Complete)
                {
                    var bytes = read.Buffer.Slice(0, PduHeader.Size + body.Length).ToArray();
                    Input.AdvanceTo(buffer.Start);
                    return (header, bytes);
                }

                Input.AdvanceTo(read.Buffer.Start, read.Buffer.End);
                if (read.IsCompleted)
                {
                    return null;
                }
            }
        }

        /// <summary>True when the handler finished and completed its output without sending anything more.</summary>
        public async Task<bool> ClosedWithoutPduAsync()
        {
            await Run.WaitAsync(TimeSpan.FromSeconds(10));
            return await ReadPduAsync() is null;
        }
    }

    internal sealed class FakeLifetime : IHostApplicationLifetime
    {
        private readonly CancellationTokenSource _stopping = new();

        public CancellationToken ApplicationStarted => CancellationToken.None;

        public CancellationToken ApplicationStopping => _stopping.Token;

        public CancellationToken ApplicationStopped => CancellationToken.None;

        public void StopApplication() => _stopping.Cancel();
    }

    private sealed class ListenerName(string name) : ImagingProxy.Hosting.IProxyListenerFeature
    {
        public string Name { get; } = name;
    }

    private sealed class CloseRequest(CancellationToken token) : IConnectionLifetimeNotificationFeature
    {
        public CancellationToken ConnectionClosedRequested { get; set; } = token;

        public void RequestClose()
        {
        }
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
    /// <summary>Records the passive health updates (destination id, new health); applies none.</summary>
    internal sealed class RecordingHealthUpdates : IDestinationHealthUpdater
    {
        private readonly System.Collections.Concurrent.ConcurrentQueue<(string Destination, DestinationHealth Health)> _passive = new();

        public IReadOnlyList<(string Destination, DestinationHealth Health)> Passive => [.. _passive];

        public void SetActive(ClusterState cluster, IEnumerable<NewActiveDestinationHealth> newHealthStates)
        {
        }

        public void SetPassive(ClusterState cluster, DestinationState destination, DestinationHealth newHealth, TimeSpan reactivationPeriod)
            => _passive.Enqueue((destination.DestinationId, newHealth));
    }
}

/// <summary>
/// A loopback DICOM node for handler tests: accepts one connection, answers the A-ASSOCIATE-RQ with the dcmtk AC
/// capture, then records every PDU it receives until the connection closes.
/// </summary>
internal sealed class LoopbackNode : IDisposable
{
    private readonly Socket _listener = new(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
    private readonly CancellationTokenSource _stop = new(TimeSpan.FromSeconds(30));
    private readonly List<PduType> _received = [];
    private readonly TaskCompletionSource _accepted = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public LoopbackNode()
    {
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(4);
        Port = ((IPEndPoint)_listener.LocalEndPoint!).Port;
        Closed = ServeAsync();
    }

    public int Port { get; }

    /// <summary>Completes with the PDU types the node received after its AC, when the proxy closed the connection.</summary>
    public Task<IReadOnlyList<PduType>> Closed { get; }

    /// <summary>Completes when the node accepted the proxy's TCP connection.</summary>
    public Task Accepted => _accepted.Task;

    /// <summary>True once the node received an A-ASSOCIATE-RQ (and answered it with its AC).</summary>
    public bool SawRequest { get; private set; }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Dispose();
        _stop.Dispose();
    }

    private async Task<IReadOnlyList<PduType>> ServeAsync()
    {
        using var socket = await _listener.AcceptAsync(_stop.Token);
        socket.NoDelay = true;
        _accepted.TrySetResult();
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var input = PipeReader.Create(stream);
        var first = true;
        while (true)
        {
            var read = await input.ReadAsync(_stop.Token);
            var buffer = read.Buffer;
            while (PduReader.TryReadPdu(ref buffer, 1 << 20, out var header, out _) == PduReadResult.Complete)
            {
                if (first)
                {
                    first = false;
                    SawRequest = true;
                    await stream.WriteAsync(DicomCaptures.AssociateAccept, _stop.Token);
                }
                else
                {
                    _received.Add(header.Type);
                    if (header.Type == PduType.ReleaseRequest)
                    {
                        await stream.WriteAsync(DicomCaptures.ReleaseResponse, _stop.Token);
                    }
                }
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            if (read.IsCompleted)
            {
                return [.. _received];
            }
        }
    }
}

/// <summary>
/// A reader whose reads, once <see cref="CancelFromNowOn"/> is called, come back cancelled as well: what Kestrel's input
/// pipe returns when the client's ConnectionClosed stopped the relay (CancelPendingRead) after the client's last bytes
/// and its end of stream arrived.
/// </summary>
internal sealed class CancellingReader(PipeReader inner) : PipeReader
{
    private volatile bool _cancel;

    public void CancelFromNowOn() => _cancel = true;

    public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        var read = await inner.ReadAsync(cancellationToken);
        return _cancel ? new ReadResult(read.Buffer, isCanceled: true, read.IsCompleted) : read;
    }

    public override bool TryRead(out ReadResult result) => inner.TryRead(out result);

    public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);

    public override void CancelPendingRead() => inner.CancelPendingRead();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);
}
