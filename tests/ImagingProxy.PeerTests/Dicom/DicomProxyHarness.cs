using System.Globalization;
using System.Text;
using ImagingProxy.Dicom;
using ImagingProxy.Health;
using ImagingProxy.Testing;
using Microsoft.Extensions.DependencyInjection;
using Yarp.ReverseProxy;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.PeerTests.Dicom;

/// <summary>Builds DICOM proxy configurations for the peer tests and waits for association summaries.</summary>
internal static class DicomProxyHarness
{
    public static string Port(int port) => port.ToString(CultureInfo.InvariantCulture);

    /// <summary>A DICOM cluster; each destination is (id, port, AE title or null).</summary>
    public static string Cluster(string id, IEnumerable<(string Id, int Port, string? AeTitle)> destinations, string policy = "FirstAlphabetical", string extra = "")
    {
        var text = new StringBuilder();
        foreach (var (destinationId, port, aeTitle) in destinations)
        {
            if (text.Length > 0)
            {
                text.Append(',');
            }

            var metadata = aeTitle is null ? string.Empty : $$""", "Metadata": { "AeTitle": "{{aeTitle}}" }""";
            text.Append(CultureInfo.InvariantCulture, $$"""
                "{{destinationId}}": { "Address": "tcp://127.0.0.1:{{port}}"{{metadata}} }
                """);
        }

        return $$"""
            "{{id}}": { "LoadBalancingPolicy": "{{policy}}", "Metadata": { "Protocol": "Dicom" {{extra}} }, "Destinations": { {{text}} } }
            """;
    }

    /// <summary>An <c>ImagingProxy</c> section with one DICOM listener <c>dicom</c> on port 0 and the given routes.</summary>
    public static string Dicom(string routes, bool earlyConnect = false, int? maxAssociations = null)
        => $$"""
            { "Dicom": { "Listeners": { "dicom": { "Address": "127.0.0.1", "Port": 0, "EarlyConnect": {{(earlyConnect ? "true" : "false")}}{{(maxAssociations is { } max ? $", \"MaxAssociations\": {max}" : "")}} } }, "Routes": { {{routes}} } } }
            """;

    public static string Route(string id, string calledAeTitle, string cluster)
        => $$""" "{{id}}": { "CalledAeTitle": "{{calledAeTitle}}", "Cluster": "{{cluster}}" } """;

    public static Task<TestProxy> StartAsync(string clusters, string routes, bool earlyConnect = false, int? maxAssociations = null)
        => TestProxy.StartAsync(TestProxy.Config("{" + clusters + "}", Dicom(routes, earlyConnect, maxAssociations)));

    /// <summary>
    /// Waits until every one of <paramref name="destinations"/> of <paramref name="clusterId"/> meets
    /// <paramref name="condition"/>: checked now, on each health transition and after each probe (a transition may be
    /// raised just before the state is visible), within <paramref name="bound"/>.
    /// </summary>
    public static async Task WaitForHealthAsync(TestProxy proxy, string clusterId, Func<DestinationState, bool> condition, string[] destinations, TimeSpan bound)
    {
        var tracker = proxy.Services.GetRequiredService<DestinationHealthTracker>();
        var monitor = proxy.Services.GetRequiredService<ActiveHealthMonitor>();
        var lookup = proxy.Services.GetRequiredService<IProxyStateLookup>();
        var settled = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        void Check()
        {
            if (lookup.TryGetCluster(clusterId, out var cluster)
                && destinations.All(id => cluster.Destinations.TryGetValue(id, out var d) && condition(d)))
            {
                settled.TrySetResult();
            }
        }

        void OnTransition(string cluster, string destination, string kind, DestinationHealth from, DestinationHealth to) => Check();
        void OnProbe(ClusterState cluster, DestinationState destination, Configuration.ClusterProtocol protocol, ProbeResult result, TimeSpan duration) => Check();
        tracker.Transition += OnTransition;
        monitor.ProbeCompleted += OnProbe;
        try
        {
            Check();
            await settled.Task.WaitAsync(bound);
        }
        finally
        {
            tracker.Transition -= OnTransition;
            monitor.ProbeCompleted -= OnProbe;
        }
    }

    /// <summary>Every file of <paramref name="sent"/> arrived at <paramref name="scp"/> once, its data set byte for byte.</summary>
    public static async Task AssertReceivedAsync(Peers.StoreScp scp, IReadOnlyList<Peers.TestDicomFile> sent)
    {
        var received = scp.ReceivedFiles();
        Assert.Equal(sent.Count, received.Count);
        foreach (var file in sent)
        {
            var copy = Assert.Single(received, path => Path.GetFileName(path).EndsWith(file.SopInstanceUid, StringComparison.Ordinal));
            var original = await File.ReadAllBytesAsync(file.Path);
            var written = await File.ReadAllBytesAsync(copy);
            Assert.True(Peers.DicomPart10.DataSet(original).Span.SequenceEqual(Peers.DicomPart10.DataSet(written).Span), $"The data set of {copy} differs from {file.Path}");
        }
    }

    /// <summary>Collects every association summary of the proxy from now on.</summary>
    public static SummaryRecorder Record(TestProxy proxy) => new(proxy.Services.GetRequiredService<DicomConnectionHandler>());

    /// <summary>
    /// Records the latest result of each destination's active probes made from now on (probing starts with the proxy, so
    /// a first result may come before any handler): <see cref="ProbeRecorder.WaitAsync"/> until each named one has one.
    /// </summary>
    public sealed class ProbeRecorder : IDisposable
    {
        private readonly ActiveHealthMonitor _monitor;
        private readonly string[] _destinations;
        private readonly System.Collections.Concurrent.ConcurrentDictionary<string, ProbeResult> _results = new();
        private readonly TaskCompletionSource _all = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public ProbeRecorder(TestProxy proxy, params string[] destinations)
        {
            _monitor = proxy.Services.GetRequiredService<ActiveHealthMonitor>();
            _destinations = destinations;
            _monitor.ProbeCompleted += OnProbe;
        }

        public ProbeResult this[string destination] => _results[destination];

        public Task WaitAsync(TimeSpan bound) => _all.Task.WaitAsync(bound);

        public void Dispose() => _monitor.ProbeCompleted -= OnProbe;

        private void OnProbe(ClusterState cluster, DestinationState destination, Configuration.ClusterProtocol protocol, ProbeResult result, TimeSpan duration)
        {
            _results[destination.DestinationId] = result;
            if (_destinations.All(_results.ContainsKey))
            {
                _all.TrySetResult();
            }
        }
    }

    public sealed class SummaryRecorder : IDisposable
    {
        private readonly DicomConnectionHandler _handler;
        private readonly List<DicomAssociationSummary> _all = [];
        private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public SummaryRecorder(DicomConnectionHandler handler)
        {
            _handler = handler;
            _handler.AssociationEnded += OnEnded;
        }

        /// <summary>Waits (bounded) until <paramref name="count"/> associations have ended.</summary>
        public async Task<IReadOnlyList<DicomAssociationSummary>> WaitAsync(int count, TimeSpan? timeout = null)
        {
            using var cancel = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(20));
            while (true)
            {
                Task changed;
                lock (_all)
                {
                    if (_all.Count >= count)
                    {
                        return [.. _all];
                    }

                    changed = _changed.Task;
                }

                await changed.WaitAsync(cancel.Token);
            }
        }

        public void Dispose() => _handler.AssociationEnded -= OnEnded;

        private void OnEnded(DicomAssociationSummary summary)
        {
            TaskCompletionSource changed;
            lock (_all)
            {
                _all.Add(summary);
                changed = _changed;
                _changed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            }

            changed.TrySetResult();
        }
    }
}
