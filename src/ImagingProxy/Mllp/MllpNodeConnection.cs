using System.Buffers;
using System.Net.Security;
using System.Net.Sockets;
using ImagingProxy.Configuration;
using Yarp.ReverseProxy.Configuration;

namespace ImagingProxy.Mllp;

/// <summary>
/// One connection to an HL7 receiver (a cluster destination), used by one message at a time: send a frame, read the
/// acknowledgement frame. The socket is used directly (no pipe with its own send and receive loops per node
/// connection): a message costs one send and, when the ACK has not arrived yet, one receive that waits for it.
/// </summary>
/// <remarks>
/// <para>
/// Before each send, whatever the node sent since the last ACK (a late application ACK, or a frame that came in the same
/// read as the ACK) is dropped, never paired with the next message (protocols.md §3.7). A plain connection posts the
/// receive its ACK will come by just before the send: the socket makes that receive's first attempt at once (on Linux,
/// whenever no other receive is queued on the socket, which this class never leaves), which
/// takes whatever the kernel holds at that moment (bytes whose readiness the socket engine has not processed yet
/// included); what it brings is dropped, and once it finds nothing it stays pending for the ACK. That is one system call
/// (<c>recvfrom</c> answered <c>EAGAIN</c>) where asking for the waiting bytes first (<c>FIONREAD</c>) and receiving
/// after the send took two. (A receive kept pending between messages instead saw a late frame only once the engine had
/// handled its event, a window of one event batch under load.) A message that gets no ACK (MSH-15 NE) posts no receive:
/// its connection asks for the waiting bytes.
/// An unsolicited frame still arriving at that point (its trailer not yet received) would end after the send and pass
/// for the message's ACK: such a connection refuses the send and is discarded.
/// </para>
/// <para>
/// To a <c>tls://</c> node the frames go through a TLS session (<see cref="SslStream"/>). Its bytes cannot be looked at
/// before they are decrypted, so between messages the connection keeps one read pending (read-ahead): a frame it brings
/// while no message is in flight is unsolicited and dropped before the next send, and TLS records that carry no data
/// (TLS 1.3 session tickets) are consumed by it unseen.
/// </para>
/// <para>
/// A receive is not cancelled through the socket's own cancellation: <see cref="StopReceivingOn"/> shuts the socket's
/// receive side when the caller's token fires (the pending receive returns 0). The connection then refuses further
/// sends, so a message never goes to a node whose answer could no longer be read.
/// </para>
/// </remarks>
internal sealed class MllpNodeConnection : IAsyncDisposable
{
    /// <summary>Send and receive buffers to start with; the receive buffer grows for a larger ACK frame, up to the frame limit.</summary>
    private const int InitialBufferSize = 4096;

    /// <summary>A send buffer grown past this for a large message is dropped afterwards, not kept per connection.</summary>
    private const int RetainedSendSize = 64 * 1024;

    private readonly Socket _socket;
    private readonly SslStream? _tls;
    private readonly MllpFrameReader _frames;
    private ArrayBufferWriter<byte> _send = new(InitialBufferSize);
    private byte[] _receive = new byte[InitialBufferSize];
    private int _start;
    private int _end;
    private int _disposed;

    /// <summary>How many control ids of messages sent on this connection are remembered (<see cref="AcknowledgesPrevious"/>).</summary>
    internal const int SentHistory = 16;

    /// <summary>
    /// MSH-10 (raw) of the last <see cref="SentHistory"/> messages sent on this connection, a ring indexed by the message's
    /// number (<c>_sent - 1</c> is the last one's); each slot is allocated once (an id longer than it grows it).
    /// </summary>
    private readonly byte[][] _sentIds = new byte[SentHistory][];
    private readonly int[] _sentLengths = new int[SentHistory];

    /// <summary>Messages sent on this connection (the ring holds the last <see cref="SentHistory"/> of them).</summary>
    private long _sent;

    /// <summary>TLS only: the read that is pending into <c>_receive[_end..]</c> (the buffer is not moved while it runs).</summary>
    private Task<int>? _pending;

    /// <summary>Plain only: a receive into <c>_receive[_end..]</c> was started and its bytes not taken in yet (<see cref="Received"/>).</summary>
    private bool _plainPending;

    /// <summary>
    /// Plain only: the ACK's receive posted before the send (<see cref="PostAckReceive"/>), until <see cref="ReceiveMoreAsync"/>
    /// hands it out. A posted receive is a started one: <c>_hasPosted</c> implies <c>_plainPending</c>.
    /// </summary>
    private ValueTask<int> _posted;
    private bool _hasPosted;

    /// <summary>Set once <see cref="StopReceivingOn"/>'s token fired: the receive side is shut.</summary>
    private volatile bool _receiveStopped;

    public MllpNodeConnection(string address, Socket socket, int maxFrameSize, SslStream? tls = null)
    {
        ArgumentNullException.ThrowIfNull(socket);
        Address = address;
        _socket = socket;
        _tls = tls;
        _frames = new MllpFrameReader(maxFrameSize);
    }

    /// <summary>The destination address (<c>tcp://host:port</c>) this connection goes to: the pool key.</summary>
    public string Address { get; }

    /// <summary>True once the connection has carried a message (so it may have gone stale in the pool).</summary>
    public bool Used { get; private set; }

    /// <summary>Frames a node sent while no message was in flight (a late enhanced-mode application ACK), discarded.</summary>
    public int UnsolicitedFrames { get; private set; }

    /// <summary>Bytes the node sent outside an MLLP frame (not &lt;SB&gt;...&lt;EB&gt;&lt;CR&gt;), discarded.</summary>
    public long BytesOutsideFrames { get; private set; }

    /// <summary>Bytes received and not yet taken as a frame: the start of a frame whose end has not arrived.</summary>
    public int UnfinishedFrameBytes => _end - _start;

    /// <summary>True for a connection to a <c>tls://</c> node (frames go through a TLS session).</summary>
    public bool IsTls => _tls is not null;

    /// <summary>The TLS settings the session was opened with (<see cref="NodeTls.ClientSettings"/>); null for a plain connection.</summary>
    public string? TlsSettings { get; set; }

    /// <summary>The cluster and destination configuration this connection was last found to match (MllpForwarder).</summary>
    public (ClusterConfig Cluster, DestinationConfig Destination)? Configured { get; set; }

    /// <summary>The certificate the node presented (TLS connections), else null.</summary>
    public System.Security.Cryptography.X509Certificates.X509Certificate? RemoteCertificate => _tls?.RemoteCertificate;

    /// <summary>Bytes the node sent that this plain connection has not received from the socket yet (tests).</summary>
    internal int BytesWaiting => _socket.Available;

    /// <summary>TLS: the read kept pending between messages, if any (tests await it to know a frame has arrived).</summary>
    internal Task? ReadAhead => _pending;

    /// <summary>
    /// A new connection to <paramref name="target"/> (<c>NoDelay</c> on), with its TLS session when <paramref name="tls"/>
    /// is given, both within <paramref name="connectTimeout"/>.
    /// </summary>
    /// <exception cref="SocketException">The node refused or did not answer in time (<see cref="SocketError.TimedOut"/>).</exception>
    /// <exception cref="System.Security.Authentication.AuthenticationException">The node's certificate was not accepted, or no protocol was agreed.</exception>
    /// <exception cref="IOException">The node closed the connection during the TLS handshake.</exception>
    public static async ValueTask<MllpNodeConnection> ConnectAsync(string address, TcpAddress target, SslClientAuthenticationOptions? tls, int maxFrameSize, TimeSpan connectTimeout, CancellationToken cancellationToken)
    {
        var socket = target.NewSocket();
        SslStream? session = null;
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            timeout.CancelAfter(connectTimeout);
            await socket.ConnectAsync(target.Host, target.Port, timeout.Token);
            if (tls is not null)
            {
                session = await NodeTls.OpenAsync(socket, tls, timeout.Token);
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            session?.Dispose();
            socket.Dispose();
            throw new SocketException((int)SocketError.TimedOut);
        }
        catch
        {
            session?.Dispose();
            socket.Dispose();
            throw;
        }

        return new MllpNodeConnection(address, socket, maxFrameSize, session);
    }

    /// <summary>Writes <paramref name="message"/> as one MLLP frame, bytes unchanged, in one send.</summary>
    /// <returns>
    /// False, nothing sent, when the node had closed the connection or is partway through an unsolicited frame (the
    /// caller discards the connection).
    /// </returns>
    /// <param name="message">The HL7 message, without MLLP framing.</param>
    /// <param name="cancellationToken">Ends a send that does not complete.</param>
    /// <param name="noAck">
    /// No ACK will be awaited (MSH-15 NE), so nothing else would see that the node closed a connection it used before
    /// (its idle timeout): a plain connection then checks for the close first (one poll), a TLS one has its read-ahead.
    /// </param>
    public async ValueTask<bool> SendAsync(ReadOnlySequence<byte> message, CancellationToken cancellationToken, bool noAck = false)
    {
        var reused = Used;
        Used = true;
        if (_receiveStopped || !(_tls is not null ? DiscardUnsolicitedTls() : noAck ? DiscardUnsolicited() : PostAckReceive()))
        {
            return false;
        }

        if (noAck && reused && _tls is null && _socket.Poll(0, SelectMode.SelectRead) && _socket.Available == 0)
        {
            return false; // readable with nothing to read: the node closed it (or reset it)
        }

        // One copy of the message into this connection's send buffer (messages are small; a large one is copied once).
        _send.ResetWrittenCount();
        MllpFrameWriter.Write(_send, message);
        var frame = _send.WrittenMemory;
        if (_tls is not null)
        {
            await _tls.WriteAsync(frame, cancellationToken);
        }
        else
        {
            while (!frame.IsEmpty)
            {
                var sent = await _socket.SendAsync(frame, SocketFlags.None, cancellationToken);
                frame = frame[sent..];
            }
        }

        if (_send.Capacity > RetainedSendSize)
        {
            _send = new ArrayBufferWriter<byte>(InitialBufferSize);
        }

        return true;
    }

    /// <summary>
    /// Notes the MSH-10 of the message just sent (raw), so that a late answer to one sent before it can be told from the
    /// answer to this one (<see cref="AcknowledgesPrevious"/>).
    /// </summary>
    public void Sent(ReadOnlySpan<byte> controlId)
    {
        var i = (int)(_sent++ % SentHistory);
        var slot = _sentIds[i];
        if (slot is null || controlId.Length > slot.Length)
        {
            _sentIds[i] = slot = new byte[Math.Max(32, controlId.Length)];
        }

        controlId.CopyTo(slot);
        _sentLengths[i] = controlId.Length;
    }

    /// <summary>
    /// True when <paramref name="ack"/> answers one of the <see cref="SentHistory"/> - 1 messages sent on this connection
    /// before the last one: a late or repeated answer (a node that acknowledged twice, an enhanced-mode application ACK
    /// that follows its commit ACK a few messages later), which must not pass for the last message's ACK.
    /// </summary>
    public bool AcknowledgesPrevious(in Hl7Ack ack)
    {
        // The messages before the last one (number _sent - 1), as far back as the ring holds them.
        for (var n = _sent - 2; n >= 0 && n >= _sent - SentHistory; n--)
        {
            var i = (int)(n % SentHistory);
            if (ack.AcknowledgedControlId.ValueEquals(_sentIds[i].AsSpan(0, _sentLengths[i])))
            {
                return true;
            }
        }

        return false;
    }

    /// <summary>A frame taken while waiting for an ACK was a late answer to an earlier message: counted as unsolicited and dropped.</summary>
    public void DroppedLateAnswer() => UnsolicitedFrames++;

    /// <summary>Reads the next frame from the node into <paramref name="ack"/>; false when the node closed or sent an oversize frame.</summary>
    /// <exception cref="OperationCanceledException"><paramref name="cancellationToken"/> fired first (the connection can only be discarded then).</exception>
    public async ValueTask<bool> ReceiveAsync(ArrayBufferWriter<byte> ack, CancellationToken cancellationToken)
    {
        MllpReadResult read;
        using (StopReceivingOn(cancellationToken))
        {
            try
            {
                while ((read = TakeFrame(ack)) == MllpReadResult.NeedMoreData)
                {
                    var received = await ReceiveMoreAsync();
                    if (received == 0)
                    {
                        break;
                    }

                    Received(received);
                }
            }
            catch (Exception ex) when (cancellationToken.IsCancellationRequested && ex is SocketException or IOException or ObjectDisposedException)
            {
                read = MllpReadResult.NeedMoreData;
            }
        }

        cancellationToken.ThrowIfCancellationRequested();
        return read == MllpReadResult.Frame;
    }

    /// <summary>
    /// Ends this connection's receiving when <paramref name="cancellationToken"/> fires: the pending receive returns 0 (the
    /// caller then discards the connection). Dispose the registration once the receive is done.
    /// </summary>
    public CancellationTokenRegistration StopReceivingOn(CancellationToken cancellationToken)
        => cancellationToken.UnsafeRegister(static s => ((MllpNodeConnection)s!).StopReceiving(), this);

    /// <summary>
    /// Takes the next whole frame already received into <paramref name="ack"/>: <see cref="MllpReadResult.Frame"/>,
    /// <see cref="MllpReadResult.FrameTooLarge"/>, or <see cref="MllpReadResult.NeedMoreData"/> (then
    /// <see cref="ReceiveMoreAsync"/> and <see cref="Received"/>, and again).
    /// </summary>
    /// <remarks>
    /// <see cref="ReceiveAsync"/> in three steps, for a caller on the per-message path: it awaits the node's socket
    /// itself, without an async level of this class between (a level suspended per message costs 1-2 µs of CPU).
    /// </remarks>
    public MllpReadResult TakeFrame(ArrayBufferWriter<byte> ack)
    {
        var read = TryTakeFrame(ack);
        if (read == MllpReadResult.Frame)
        {
            StartReadAhead();
        }

        return read;
    }

    /// <summary>
    /// Receives more bytes from the node (after <see cref="TakeFrame"/> needed more); 0 when the node closed the connection
    /// or <see cref="StopReceivingOn"/> stopped it. Awaited once, then <see cref="Received"/>.
    /// </summary>
    /// <remarks>
    /// The caller ends a receive through <see cref="StopReceivingOn"/> (shutting the socket's receive side ends a TLS read
    /// too), not through a token: no registration or wrapper task per message.
    /// </remarks>
    public ValueTask<int> ReceiveMoreAsync()
    {
        if (_tls is null)
        {
            if (_hasPosted)
            {
                // The receive posted before the send (PostAckReceive).
                var posted = _posted;
                _posted = default;
                _hasPosted = false;
                return posted;
            }

            MakeRoom();
            _plainPending = true;
            return _socket.ReceiveAsync(_receive.AsMemory(_end), SocketFlags.None, CancellationToken.None);
        }

        StartRead();
        return new ValueTask<int>(_pending!);
    }

    /// <summary>Takes in the <paramref name="count"/> bytes (above 0) that <see cref="ReceiveMoreAsync"/> received.</summary>
    public void Received(int count)
    {
        _pending = null;
        _plainPending = false;
        _end += count;
    }

    public ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            _tls?.Dispose();
            _socket.Dispose();

            // The read-ahead ends with the connection; its exception is expected and observed here.
            _pending?.ContinueWith(static t => _ = t.Exception, CancellationToken.None, TaskContinuationOptions.OnlyOnFaulted | TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
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
            if (read == MllpReadResult.BytesOutsideFrame)
            {
                BytesOutsideFrames += frame.Length;
                continue;
            }

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
                if (ack is null)
                {
                    // An oversize unsolicited frame: skipped, and a frame after it is dropped too.
                    UnsolicitedFrames++;
                    continue;
                }

                break;
            }
        }

        _start = _end - (int)buffer.Length;
        if (_start == _end && _pending is null && !_plainPending)
        {
            // Back to the buffer's start, unless a receive is pending into it at _end.
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

    /// <summary>A message that gets no ACK (MSH-15 NE) was sent: TLS starts its read-ahead, as after an ACK.</summary>
    public void SentWithoutAck() => StartReadAhead();

    /// <summary>TLS: keeps a read pending while no message is in flight (see the remarks); nothing for plain connections.</summary>
    private void StartReadAhead()
    {
        if (_tls is not null && Volatile.Read(ref _disposed) == 0)
        {
            StartRead();
        }
    }

    /// <summary>TLS: starts the next read into the buffer unless one is pending.</summary>
    private void StartRead()
    {
        if (_pending is null)
        {
            MakeRoom();
            _pending = _tls!.ReadAsync(_receive.AsMemory(_end)).AsTask();
        }
    }

    private void StopReceiving()
    {
        _receiveStopped = true;
        try
        {
            _socket.Shutdown(SocketShutdown.Receive);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // Already closed: the receive has ended anyway.
        }
    }

    /// <summary>
    /// TLS: drops the frames the read-ahead brought while no message was in flight. False when the node closed the
    /// connection (or the session failed) meanwhile, or an unsolicited frame is incomplete.
    /// </summary>
    private bool DiscardUnsolicitedTls()
    {
        if (_end > _start)
        {
            // What the ACK's own read brought after the ACK frame.
            TryTakeFrame(ack: null);
        }

        while (_pending is { IsCompleted: true } done)
        {
            _pending = null;
            if (!done.IsCompletedSuccessfully || done.Result == 0)
            {
                _ = done.Exception;
                return false;
            }

            _end += done.Result;
            TryTakeFrame(ack: null);
            StartRead();
        }

        return !InsideUnsolicitedFrame;
    }

    /// <summary>
    /// Posts the receive the message's ACK will come by, before the message is sent (see the remarks): what its first
    /// attempt, made at once, brings was sent before the message and is dropped (protocols.md §3.7: never pair an ACK
    /// with the wrong message), and the next receive is posted, until one has to wait. False when the node closed the
    /// connection meanwhile, an unsolicited frame is incomplete, or the answer to an earlier message was never read
    /// (whatever the receive posted for it brings could not be told from this message's ACK).
    /// </summary>
    private bool PostAckReceive()
    {
        if (_plainPending)
        {
            return false;
        }

        while (true)
        {
            if (_end > _start)
            {
                // What an earlier receive brought after its ACK frame, or what the attempt below brought.
                TryTakeFrame(ack: null);
            }

            MakeRoom();
            var receive = _socket.ReceiveAsync(_receive.AsMemory(_end), SocketFlags.None, CancellationToken.None);
            if (!receive.IsCompleted)
            {
                _posted = receive;
                _hasPosted = true;
                _plainPending = true;
                return !InsideUnsolicitedFrame;
            }

            var received = receive.Result;
            if (received == 0)
            {
                return false;
            }

            _end += received;
        }
    }

    /// <summary>
    /// Drops whatever the node sent since the last ACK (protocols.md §3.7: never pair an ACK with the wrong message),
    /// for a message that gets no ACK (no receive is posted for it). False when the node closed the connection
    /// meanwhile, or an unsolicited frame is incomplete.
    /// </summary>
    private bool DiscardUnsolicited()
    {
        if (_plainPending)
        {
            // A receive posted for an earlier message's answer, never read (see PostAckReceive).
            return false;
        }

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
            // Also what the ACK's own receive brought after the ACK frame.
            TryTakeFrame(ack: null);
        }

        return !InsideUnsolicitedFrame;
    }

    /// <summary>
    /// Bytes of an unsolicited frame whose trailer has not arrived are left after the discard: the frame would end after
    /// the next send and pass for its ACK, so the connection takes no further message.
    /// </summary>
    private bool InsideUnsolicitedFrame => _end > _start;
}
