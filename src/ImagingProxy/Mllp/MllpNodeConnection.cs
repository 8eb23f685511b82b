using System.Buffers;
using System.Net.Sockets;

namespace ImagingProxy.Mllp;

/// <summary>
/// One connection to an HL7 receiver (a cluster destination), used by one message at a time: send a frame, read the
/// acknowledgement frame. The socket is used directly (no pipe with its own send and receive loops per node
/// connection): a message costs one send and, when the ACK has not arrived yet, one receive that waits for it.
/// </summary>
internal sealed class MllpNodeConnection : IAsyncDisposable
{
    /// <summary>Send and receive buffers to start with; the receive buffer grows for a larger ACK frame, up to the frame limit.</summary>
    private const int InitialBufferSize = 4096;

    /// <summary>A send buffer grown past this for a large message is dropped afterwards, not kept per connection.</summary>
    private const int RetainedSendSize = 64 * 1024;

    private readonly Socket _socket;
    private readonly MllpFrameReader _frames;
    private ArrayBufferWriter<byte> _send = new(InitialBufferSize);
    private byte[] _receive = new byte[InitialBufferSize];
    private int _start;
    private int _end;
    private int _disposed;

    public MllpNodeConnection(string address, Socket socket, int maxFrameSize)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Address = address;
        _socket = socket;
        _frames = new MllpFrameReader(maxFrameSize);
    }

    /// <summary>The destination address (<c>tcp://host:port</c>) this connection goes to: the pool key.</summary>
    public string Address { get; }

    /// <summary>True once the connection has carried a message (so it may have gone stale in the pool).</summary>
    public bool Used { get; private set; }

    /// <summary>Frames a node sent while no message was in flight (a late enhanced-mode application ACK), discarded.</summary>
    public int UnsolicitedFrames { get; private set; }

    /// <summary>Bytes the node sent that this connection has not received from the socket yet (tests).</summary>
    internal int BytesWaiting => _socket.Available;

    /// <summary>Writes <paramref name="message"/> as one MLLP frame, bytes unchanged, in one send.</summary>
    /// <returns>False when the node had closed the connection.</returns>
    public async ValueTask<bool> SendAsync(ReadOnlySequence<byte> message, CancellationToken cancellationToken)
    {
        Used = true;
        if (!DiscardUnsolicited())
        {
            return false;
        }

        // One copy of the message into this connection's send buffer (messages are small; a large one is copied once).
        _send.ResetWrittenCount();
        MllpFrameWriter.Write(_send, message);
        var frame = _send.WrittenMemory;
        while (!frame.IsEmpty)
        {
            var sent = await _socket.SendAsync(frame, SocketFlags.None, cancellationToken);
            frame = frame[sent..];
        }

        if (_send.Capacity > RetainedSendSize)
        {
            _send = new ArrayBufferWriter<byte>(InitialBufferSize);
        }

        return true;
    }

    /// <summary>Reads the next frame from the node into <paramref name="ack"/>; false when the node closed or sent an oversize frame.</summary>
    public async ValueTask<bool> ReceiveAsync(ArrayBufferWriter<byte> ack, CancellationToken cancellationToken)
    {
        while (true)
        {
            switch (TryTakeFrame(ack))
            {
                case MllpReadResult.Frame:
                    return true;
                case MllpReadResult.FrameTooLarge:
                    return false;
            }

            MakeRoom();
            var received = await _socket.ReceiveAsync(_receive.AsMemory(_end), SocketFlags.None, cancellationToken);
            if (received == 0)
            {
                return false;
            }

            _end += received;
        }
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _socket.Dispose();
        }

        return ValueTask.CompletedTask;
    }

    /// <summary>
    /// Takes the next whole frame out of the bytes received so far (stray bytes between a node's frames are dropped).
    /// With <paramref name="ack"/> null the frame is only counted as unsolicited.
    /// </summary>
    private MllpReadResult TryTakeFrame(ArrayBufferWriter<byte>? ack)
    {
        var buffer = new ReadOnlySequence<byte>(_receive, _start, _end - _start);
        MllpReadResult read;
        while ((read = _frames.TryReadFrame(ref buffer, out var frame)) != MllpReadResult.NeedMoreData)
        {
            if (read == MllpReadResult.Frame)
            {
                if (ack is null)
                {
                    UnsolicitedFrames++;
                    continue;
                }

                foreach (var segment in frame)
                {
                    ack.Write(segment.Span);
                }

                break;
            }

            if (read == MllpReadResult.FrameTooLarge)
            {
                break;
            }
        }

        _start = _end - (int)buffer.Length;
        if (_start == _end)
        {
            _start = _end = 0;
        }

        return read;
    }

    /// <summary>Room for the next receive: unconsumed bytes move to the front; the buffer doubles when a frame does not fit.</summary>
    private void MakeRoom()
    {
        if (_start > 0)
        {
            _receive.AsSpan(_start, _end - _start).CopyTo(_receive);
            _end -= _start;
            _start = 0;
        }

        if (_end == _receive.Length)
        {
            // The frame reader stops an oversize frame at its limit, so the buffer stays within the limit plus one read.
            Array.Resize(ref _receive, _receive.Length * 2);
        }
    }

    /// <summary>
    /// Drops whatever the node sent since the last ACK (protocols.md §3.7: never pair an ACK with the wrong message).
    /// False when the node closed the connection meanwhile.
    /// </summary>
    private bool DiscardUnsolicited()
    {
        while (_socket.Available > 0)
        {
            MakeRoom();
            var received = _socket.Receive(_receive.AsSpan(_end), SocketFlags.None);
            if (received == 0)
            {
                return false;
            }

            _end += received;
        }

        if (_end > _start)
        {
            TryTakeFrame(ack: null);
        }

        return true;
    }
}
