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
/// <para>
/// A reply written to the pipe is sent by Kestrel's send loop, which the flush resumes: a suspension and a resumption
/// per message, besides the pipe's own work. Sent to the socket directly, a reply is one send that completes at once
/// while the client reads its ACKs, as it does (one message in flight per connection).
/// </para>
/// <para>
/// A reply that is not sent at once (the client stopped reading) gets <see cref="SendTimeout"/>; then the connection
/// is aborted (<see cref="TimedOut"/>), so it does not hold its <c>MaxConnections</c> slot and its node connection
/// until the drain. The timer is armed only for such a reply.
/// </para>
/// </remarks>
internal sealed class MllpReplyWriter : IDisposable
{
    /// <summary>How long a reply may wait for the client to read (the DICOM side's bound for the same case).</summary>
    public static readonly TimeSpan SendTimeout = TimeSpan.FromSeconds(5);

    /// <summary>A reply buffer grown past this for a large ACK is dropped afterwards, not kept per connection.</summary>
    private const int RetainedSize = 64 * 1024;

    private readonly ConnectionContext _connection;
    private readonly TimeProvider _time;
    private readonly Socket? _socket;
    private readonly PipeWriter _output;
    private ArrayBufferWriter<byte>? _buffer;
    private ITimer? _timer;
    private volatile bool _timedOut;

    private MllpReplyWriter(ConnectionContext connection, TimeProvider time, Socket? socket)
    {
        _connection = connection;
        _time = time;
        _socket = socket;
        _output = connection.Transport.Output;
        _buffer = socket is null ? null : new ArrayBufferWriter<byte>(256);
    }

    /// <summary>True when replies go to the client's socket directly.</summary>
    public bool IsDirect => _socket is not null;

    /// <summary>True once a reply waited <see cref="SendTimeout"/> for the client and the connection was aborted.</summary>
    public bool TimedOut => _timedOut;

    /// <summary>Where to write the next reply (a whole frame), then <see cref="SendAsync"/>.</summary>
    public IBufferWriter<byte> Writer => _buffer ?? (IBufferWriter<byte>)_output;

    public static MllpReplyWriter For(ConnectionContext connection, TimeProvider time)
    {
        ArgumentNullException.ThrowIfNull(connection);

        // Only Kestrel's TLS middleware replaces a raw listener's transport (RawListenerBinder); without it, the
        // transport's socket carries the connection's bytes as they are.
        var socket = connection.Features.Get<ITlsHandshakeFeature>() is null ? connection.Features.Get<IConnectionSocketFeature>()?.Socket : null;
        return new MllpReplyWriter(connection, time, socket);
    }

    /// <summary>Sends the reply written to <see cref="Writer"/>; false when the client is gone or read nothing for <see cref="SendTimeout"/>.</summary>
    public async ValueTask<bool> SendAsync()
    {
        if (_buffer is null)
        {
            var flush = _output.FlushAsync();
            var flushed = flush.IsCompleted ? flush.Result : await BoundedAsync(flush);
            return !flushed.IsCompleted && !flushed.IsCanceled;
        }

        var frame = _buffer.WrittenMemory;
        try
        {
            while (!frame.IsEmpty)
            {
                var send = _socket!.SendAsync(frame, SocketFlags.None);
                var sent = send.IsCompletedSuccessfully ? send.Result : await BoundedAsync(send);
                frame = frame[sent..];
            }

            return true;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Reset, or aborted by Kestrel (drain deadline, the send timeout): the client gets nothing more on this connection.
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

    public void Dispose() => _timer?.Dispose();

    /// <summary>Awaits a send that did not complete at once, for at most <see cref="SendTimeout"/>.</summary>
    private async ValueTask<T> BoundedAsync<T>(ValueTask<T> pending)
    {
        _timer ??= _time.CreateTimer(static s => ((MllpReplyWriter)s!).Expired(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        _timer.Change(SendTimeout, Timeout.InfiniteTimeSpan);
        try
        {
            return await pending;
        }
        finally
        {
            _timer.Change(Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>The client read nothing for <see cref="SendTimeout"/>: the pending send ends and the connection is aborted.</summary>
    private void Expired()
    {
        _timedOut = true;
        _output.CancelPendingFlush();
        _connection.Abort(new ConnectionAbortedException($"The client read no reply for {SendTimeout.TotalSeconds} s."));
    }
}
