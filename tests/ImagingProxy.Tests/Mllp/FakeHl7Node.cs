using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Threading.Channels;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

/// <summary>
/// An in-process HL7 receiver on loopback: answers each frame with an ACK (<see cref="AckCode"/>, MSA-2 = MSH-10),
/// except a frame whose MSH-15 is NE, optionally holding each answer until <see cref="Release"/> is called.
/// </summary>
internal sealed class FakeHl7Node : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _release = new(0);
    private readonly ConcurrentBag<Socket> _sockets = [];
    private readonly Task _accept;
    private int _open;
    private int _disposed;

    public FakeHl7Node(bool hold = false, string ackCode = "AA")
    {
        Hold = hold;
        AckCode = ackCode;
        _listener.Start();
        _accept = AcceptAsync();
    }

    public string Address => $"tcp://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    public bool Hold { get; }

    public string AckCode { get; }

    /// <summary>Bytes written just before each ACK frame, in the same write.</summary>
    public string AckPrefix { get; init; } = string.Empty;

    /// <summary>Bytes written just after each ACK frame, in the same write.</summary>
    public string AckSuffix { get; init; } = string.Empty;

    /// <summary>Before each ACK but a connection's first, the previous message's ACK again (a node that acknowledges twice, late).</summary>
    public bool RepeatPreviousAck { get; init; }

    /// <summary>With <see cref="RepeatPreviousAck"/>: how many messages back the answer repeated comes from (1: the previous one).</summary>
    public int RepeatAckBack { get; init; } = 1;

    /// <summary>Close each connection once its first ACK is written (a receiver's idle close, early).</summary>
    public bool CloseAfterAck { get; init; }

    /// <summary>One item per connection this node has closed (or lost).</summary>
    public Channel<bool> Closed { get; } = Channel.CreateUnbounded<bool>();

    /// <summary>Control ids received, in order.</summary>
    public Channel<string> Received { get; } = Channel.CreateUnbounded<string>();

    /// <summary>Connections open now.</summary>
    public int OpenConnections => Volatile.Read(ref _open);

    public void Release() => _release.Release();

    /// <summary>Stops the node (its port then refuses connections); a test may stop it before its own disposal.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stop.CancelAsync();
        _listener.Stop();
        foreach (var socket in _sockets)
        {
            socket.Dispose();
        }

        try
        {
            await _accept;
        }
        catch (Exception ex) when (ex is OperationCanceledException or SocketException or ObjectDisposedException)
        {
        }

        _stop.Dispose();
    }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            var socket = await _listener.AcceptSocketAsync(_stop.Token);
            _sockets.Add(socket);
            _ = Task.Run(() => ServeAsync(socket));
        }
    }

    private static string Ack(string id, string code) => $"\vMSH|^~\\&|PACS|HOSP|RIS|RAD|20250101120000||ACK^O01^ACK|A{id}|P|2.5.1\rMSA|{code}|{id}\r\u001c\r";

    private async Task ServeAsync(Socket socket)
    {
        Interlocked.Increment(ref _open);
        var frames = new MllpFrameReader();
        var headers = new Hl7HeaderReader();
        var previous = new List<string>();
        try
        {
            await using var stream = new NetworkStream(socket, ownsSocket: true);
            var input = PipeReader.Create(stream);
            while (true)
            {
                var result = await input.ReadAsync(_stop.Token);
                var buffer = result.Buffer;
                while (frames.TryReadFrame(ref buffer, out var frame) is var read && read != MllpReadResult.NeedMoreData)
                {
                    if (read != MllpReadResult.Frame)
                    {
                        continue;
                    }

                    headers.TryRead(frame, out var header);
                    var id = header.MessageControlId.GetString();
                    await Received.Writer.WriteAsync(id);
                    if (header.IsAcceptAcknowledgmentNever)
                    {
                        continue; // MSH-15 NE: no accept ACK
                    }

                    if (Hold)
                    {
                        await _release.WaitAsync(_stop.Token);
                    }

                    var repeated = RepeatPreviousAck && previous.Count >= RepeatAckBack ? Ack(previous[^RepeatAckBack], "AE") : string.Empty;
                    previous.Add(id);
                    var ack = Encoding.ASCII.GetBytes($"{AckPrefix}{repeated}{Ack(id, AckCode)}{AckSuffix}");
                    await stream.WriteAsync(ack, _stop.Token);
                    if (CloseAfterAck)
                    {
                        return;
                    }
                }

                input.AdvanceTo(buffer.Start, buffer.End);
                if (result.IsCompleted)
                {
                    return;
                }
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or IOException or SocketException or ObjectDisposedException)
        {
        }
        finally
        {
            Interlocked.Decrement(ref _open);
            Closed.Writer.TryWrite(true);
        }
    }
}
