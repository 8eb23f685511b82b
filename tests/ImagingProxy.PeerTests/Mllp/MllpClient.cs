using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using ImagingProxy.Mllp;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>An in-process MLLP sender built on our codec: one message, then wait for its reply (HL7 original mode).</summary>
internal sealed class MllpClient : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly PipeReader _input;
    private readonly MllpFrameReader _frames = new();
    private readonly Hl7AckReader _acks = new();

    private MllpClient(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
        _input = PipeReader.Create(_stream);
    }

    public static async Task<MllpClient> ConnectAsync(int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync("127.0.0.1", port, cancellationToken);
        return new MllpClient(socket);
    }

    public static byte[] Message(string controlId, string type = "ORM^O01^ORM_O01", string extraMsh = "", string body = "PID|1||12345^^^HOSP^MR||DOE^JOHN\rOBR|1|ORD1||71020^CHEST^C4\r")
        => Encoding.ASCII.GetBytes($"MSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000||{type}|{controlId}|P|2.5.1{extraMsh}\r{body}");

    /// <summary>Sends one message as a frame and returns the reply, or null when the proxy closed the connection.</summary>
    public async Task<MllpReply?> SendAsync(byte[] message, CancellationToken cancellationToken)
    {
        var frame = new ArrayBufferWriter<byte>();
        MllpFrameWriter.Write(frame, message);
        return await SendRawAsync(frame.WrittenMemory, cancellationToken);
    }

    /// <summary>Writes bytes as they are and returns the next reply frame, or null when the connection closed.</summary>
    public async Task<MllpReply?> SendRawAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        try
        {
            await _stream.WriteAsync(bytes, cancellationToken);
        }
        catch (IOException)
        {
            return null;
        }

        return await ReceiveAsync(cancellationToken);
    }

    /// <summary>Writes bytes as they are and closes the sending side (FIN); replies can still be received.</summary>
    public async Task SendAndHalfCloseAsync(ReadOnlyMemory<byte> bytes, CancellationToken cancellationToken)
    {
        await _stream.WriteAsync(bytes, cancellationToken);
        _socket.Shutdown(SocketShutdown.Send);
    }

    public async Task<MllpReply?> ReceiveAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            ReadResult result;
            try
            {
                result = await _input.ReadAsync(cancellationToken);
            }
            catch (IOException)
            {
                return null;
            }

            var buffer = result.Buffer;
            MllpReadResult read;
            while ((read = _frames.TryReadFrame(ref buffer, out var frame)) != MllpReadResult.NeedMoreData)
            {
                if (read == MllpReadResult.Frame)
                {
                    var text = Encoding.UTF8.GetString(frame);
                    var status = _acks.TryRead(frame, out var ack);
                    var reply = new MllpReply(status == Hl7ReadStatus.Success ? ack.Code : AcknowledgmentCode.None, status == Hl7ReadStatus.Success ? ack.AcknowledgedControlId.GetString() : string.Empty, text);
                    _input.AdvanceTo(buffer.Start);
                    return reply;
                }
            }

            _input.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted)
            {
                return null;
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _input.CompleteAsync();
        await _stream.DisposeAsync();
        _socket.Dispose();
    }
}

/// <summary>An acknowledgement as the sender saw it.</summary>
internal sealed record MllpReply(AcknowledgmentCode Code, string ControlId, string Text);
