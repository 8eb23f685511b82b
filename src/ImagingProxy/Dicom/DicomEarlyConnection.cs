using System.Net.Sockets;
using ImagingProxy.Configuration;
using Polly;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Dicom;

/// <summary>
/// A node connection started when the client connected, before its A-ASSOCIATE-RQ arrived (listener option
/// <c>EarlyConnect</c>): the destination was picked and counted like any attempt's, and the TCP connect runs while the
/// RQ is on its way. The association's first attempt takes it when the RQ is routed to the same cluster and the
/// destination is still available; otherwise it is closed unused and its destination released.
/// </summary>
internal sealed class DicomEarlyConnection : IAsyncDisposable
{
    private readonly CancellationTokenSource _cancel = new();
    private readonly Socket _socket;
    private readonly DicomDestinationSelector _selector;
    private Task? _connect;
    private bool _closed;

    private DicomEarlyConnection(ClusterState cluster, DestinationState destination, DicomDestinationSelector selector, Socket socket)
    {
        _socket = socket;
        Cluster = cluster;
        Destination = destination;
        _selector = selector;
    }

    public ClusterState Cluster { get; }

    public DestinationState Destination { get; }

    /// <summary>True once an attempt took the connection (it then owns the socket and the destination's count).</summary>
    public bool Taken { get; private set; }

    /// <summary>
    /// Starts connecting to the destination <paramref name="selector"/> picks among <paramref name="cluster"/>'s available
    /// ones (acquired: it counts as load at once). Null when the cluster has no available destination or its address is
    /// not a tcp:// one.
    /// </summary>
    public static DicomEarlyConnection? Start(ClusterState cluster, DicomDestinationSelector selector, ResiliencePipeline connectTimeout)
    {
        var destination = selector.PickAndAcquire(cluster, cluster.DestinationsState.AvailableDestinations);
        if (destination is null)
        {
            return null;
        }

        if (!TcpAddress.TryParse(destination.Model.Config.Address, out var address))
        {
            selector.Release(cluster, destination);
            return null;
        }

        var early = new DicomEarlyConnection(cluster, destination, selector, address.NewSocket());
        early._connect = DicomNodeConnection.ConnectAsync(early._socket, address, connectTimeout, early._cancel.Token).AsTask();
        return early;
    }

    /// <summary>Hands the socket and its connect to an attempt; the connect's failure is the attempt's to report.</summary>
    public (Socket Socket, Task Connect) Take()
    {
        Taken = true;
        return (_socket, _connect!);
    }

    /// <summary>
    /// Closes the connection now, unused (the association goes elsewhere), and releases its destination: it does not hold
    /// the node's place (<c>MaxConcurrent</c>, least-loaded counts) while the association runs on another.
    /// </summary>
    public ValueTask CloseUnusedAsync() => DisposeAsync();

    /// <summary>Closes a connection no attempt took and releases its destination (a taken one belongs to its attempt).</summary>
    public async ValueTask DisposeAsync()
    {
        if (Taken || _closed)
        {
            return;
        }

        _closed = true;
        await _cancel.CancelAsync();
        try
        {
            await _connect!;
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or Polly.Timeout.TimeoutRejectedException)
        {
        }

        _socket.Dispose();
        _cancel.Dispose();
        _selector.Release(Cluster, Destination);
    }
}
