using System.Buffers;
using Microsoft.AspNetCore.Connections;

namespace ImagingProxy.Mllp;

/// <summary>
/// One connection to an HL7 receiver (a cluster destination), used by one message at a time: send a frame, read the
/// acknowledgement frame.
/// </summary>
internal sealed class MllpNodeConnection(string address, ConnectionContext connection, int maxFrameSize) : IAsyncDisposable
{
    private readonly MllpFrameReader _frames = new(maxFrameSize);

    /// <summary>The destination address (<c>tcp://host:port</c>) this connection goes to: the pool key.</summary>
    public string Address { get; } = address;

    /// <summary>True once the connection has carried a message (so it may have gone stale in the pool).</summary>
    public bool Used { get; private set; }

    /// <summary>Frames a node sent while no message was in flight (a late enhanced-mode application ACK), discarded.</summary>
    public int UnsolicitedFrames { get; private set; }

    /// <summary>Writes <paramref name="message"/> as one MLLP frame, bytes unchanged.</summary>
    public async ValueTask<bool> SendAsync(ReadOnlySequence<byte> message, CancellationToken cancellationToken)
    {
        Used = true;
        DiscardUnsolicited();
        var output = connection.Transport.Output;
        MllpFrameWriter.Write(output, message);
        var flush = await output.FlushAsync(cancellationToken);
        return !flush.IsCompleted && !flush.IsCanceled;
    }

    /// <summary>Reads the next frame from the node into <paramref name="ack"/>; false when the node closed or sent an oversize frame.</summary>
    public async ValueTask<bool> ReceiveAsync(ArrayBufferWriter<byte> ack, CancellationToken cancellationToken)
    {
        var input = connection.Transport.Input;
        while (true)
        {
            var result = await input.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            MllpReadResult read;
            while ((read = _frames.TryReadFrame(ref buffer, out var frame)) != MllpReadResult.NeedMoreData)
            {
                if (read == MllpReadResult.Frame)
                {
                    foreach (var segment in frame)
                    {
                        ack.Write(segment.Span);
                    }

                    input.AdvanceTo(buffer.Start);
                    return true;
                }

                if (read == MllpReadResult.FrameTooLarge)
                {
                    input.AdvanceTo(buffer.Start);
                    return false;
                }

                // Stray bytes between a node's frames (CR/LF) are dropped.
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted || result.IsCanceled)
            {
                return false;
            }
        }
    }

    /// <summary>
    /// Drops whatever the node sent since the last ACK (protocols.md §3.7: never pair an ACK with the wrong message).
    /// </summary>
    private void DiscardUnsolicited()
    {
        var input = connection.Transport.Input;
        if (!input.TryRead(out var result))
        {
            return;
        }

        var buffer = result.Buffer;
        while (_frames.TryReadFrame(ref buffer, out _) is var read && read != MllpReadResult.NeedMoreData)
        {
            if (read == MllpReadResult.Frame)
            {
                UnsolicitedFrames++;
            }
        }

        input.AdvanceTo(buffer.Start, buffer.End);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            await connection.Transport.Output.CompleteAsync();
            await connection.Transport.Input.CompleteAsync();
        }
        catch (InvalidOperationException)
        {
        }

        connection.Abort();
        await connection.DisposeAsync();
    }
}
