using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;

namespace ImagingProxy.Mllp;

/// <summary>
/// Where the replies of one inbound connection go (a node's ACK relayed, ImagingProxy's own NAKs): straight to the
/// client's socket when the connection is plain TCP on Kestrel's socket transport, else through Kestrel's output pipe
/// (TLS, tests). The connection handler is the only writer of a connection, so both ways keep the replies in order.
/// </summary>
/// <remarks>
/// A reply written to the pipe is sent by Kestrel's send loop, which the flush resumes: a suspension and a resumption
/// per message, besides the pipe's own work. Sent to the socket directly, a reply is one send that completes at once
/// while the client reads its ACKs, as it does (one message in flight per connection).
/// </remarks>
internal sealed class MllpReplyWriter
{
    /// <summary>A reply buffer grown past this for a large ACK is dropped afterwards, not kept per connection.</summary>
    private const int RetainedSize = 64 * 1024;

    private readonly Socket? _socket;
    private readonly PipeWriter _output;
    private ArrayBufferWriter<byte>? _buffer;

    private MllpReplyWriter(Socket? socket, PipeWriter output)
    {
        _socket = socket;
        _output = output;
        _buffer = socket is null ? null : new ArrayBufferWriter<byte>(256);
    }

    /// <summary>True when replies go to the client's socket directly.</summary>
    public bool IsDirect => _socket is not null;

    /// <summary>Where to write the next reply (a whole frame), then <see cref="SendAsync"/>.</summary>
    public IBufferWriter<byte> Writer => _buffer ?? (IBufferWriter<byte>)_output;

    public static MllpReplyWriter For(ConnectionContext connection)
    {
        // Only Kestrel's TLS middleware replaces a raw listener's transport (RawListenerBinder); without it, the
        // transport's socket carries the connection's bytes as they are.
        var socket = connection.Features.Get<ITlsHandshakeFeature>() is null ? connection.Features.Get<IConnectionSocketFeature>()?.Socket : null;
        return new MllpReplyWriter(socket, connection.Transport.Output);
    }

    /// <summary>Sends the reply written to <see cref="Writer"/>; false when the client is gone.</summary>
    public async ValueTask<bool> SendAsync()
    {
        if (_buffer is null)
        {
            var flush = await _output.FlushAsync();
            return !flush.IsCompleted;
        }

        var frame = _buffer.WrittenMemory;
        try
        {
            while (!frame.IsEmpty)
            {
                var sent = await _socket!.SendAsync(frame, SocketFlags.None);
                frame = frame[sent..];
            }

            return true;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Reset, or aborted by Kestrel (drain deadline): the client gets nothing more on this connection.
            return false;
        }
        finally
        {
            if (_buffer.Capacity > RetainedSize)
            {
                _buffer = new ArrayBufferWriter<byte>(256);
            }
            else
            {
                _buffer.ResetWrittenCount();
            }
        }
    }
}
