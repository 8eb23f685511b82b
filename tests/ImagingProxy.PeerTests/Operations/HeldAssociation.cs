using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using ImagingProxy.Dicom;

namespace ImagingProxy.PeerTests.Operations;

/// <summary>
/// A DICOM Verification association the test holds open across events (a reload, a SIGTERM), step by step:
/// connect, A-ASSOCIATE-RQ → AC, then any number of C-ECHOs, then A-RELEASE. Written on our own codec.
/// </summary>
internal sealed class HeldAssociation : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private ushort _messageId;
    private int _disposed;

    private HeldAssociation(Socket socket)
    {
        _socket = socket;
        var stream = new NetworkStream(socket, ownsSocket: false);
        _input = PipeReader.Create(stream);
        _output = PipeWriter.Create(stream);
    }

    /// <summary>Only connects (the association request is sent later with <see cref="RequestAsync"/>).</summary>
    public static async Task<HeldAssociation> ConnectAsync(int port, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port), cancellationToken);
        return new HeldAssociation(socket);
    }

    /// <summary>Sends the A-ASSOCIATE-RQ and returns the type of the answer and its body.</summary>
    public async Task<(PduType Type, byte[] Body)> RequestAsync(string calledAeTitle, CancellationToken cancellationToken)
    {
        PduWriter.WriteAssociateRequest(_output, calledAeTitle, "HELDSCU", 1, DicomUids.Verification, DicomUids.ImplicitVrLittleEndian,
            16384, DicomUids.ImplementationClassUid, DicomUids.ImplementationVersionName);
        await _output.FlushAsync(cancellationToken);
        return await ReadPduAsync(cancellationToken);
    }

    /// <summary>
    /// As <see cref="RequestAsync"/>, with both AE title fields padded with NULs instead of spaces, as some older
    /// modalities send them.
    /// </summary>
    public async Task<(PduType Type, byte[] Body)> RequestNulPaddedAsync(string calledAeTitle, CancellationToken cancellationToken)
    {
        var buffer = new ArrayBufferWriter<byte>();
        PduWriter.WriteAssociateRequest(buffer, calledAeTitle, "HELDSCU", 1, DicomUids.Verification, DicomUids.ImplicitVrLittleEndian,
            16384, DicomUids.ImplementationClassUid, DicomUids.ImplementationVersionName);
        var pdu = buffer.WrittenSpan.ToArray();
        pdu.AsSpan(10 + calledAeTitle.Length, AeTitle.Length - calledAeTitle.Length).Clear(); // PS3.8 Table 9-11: Called at 10
        pdu.AsSpan(26 + "HELDSCU".Length, AeTitle.Length - "HELDSCU".Length).Clear(); // Calling at 26
        await _output.WriteAsync(pdu, cancellationToken);
        return await ReadPduAsync(cancellationToken);
    }

    /// <summary>One C-ECHO on the open association; returns the C-ECHO-RSP status.</summary>
    public async Task<ushort> EchoAsync(CancellationToken cancellationToken)
    {
        var command = new byte[256];
        var length = DimseCommandWriter.WriteEchoRequest(command, ++_messageId);
        PduWriter.WritePDataTransfer(_output, 1, MessageControlHeader.Command | MessageControlHeader.LastFragment, command.AsSpan(0, length));
        await _output.FlushAsync(cancellationToken);
        var (type, body) = await ReadPduAsync(cancellationToken);
        if (type != PduType.PDataTransfer || body.Length < 6)
        {
            throw new InvalidOperationException($"expected P-DATA-TF, got {type}");
        }

        // PDV item: length (4), presentation context id (1), message control header (1), command fragment.
        if (!DimseCommandReader.TryRead(body.AsSpan(6), out var response) || response.Status is not { } status)
        {
            throw new InvalidOperationException("unreadable C-ECHO-RSP");
        }

        return status;
    }

    /// <summary>A-RELEASE-RQ → A-RELEASE-RP.</summary>
    public async Task<PduType> ReleaseAsync(CancellationToken cancellationToken)
    {
        PduWriter.WriteReleaseRequest(_output);
        await _output.FlushAsync(cancellationToken);
        return (await ReadPduAsync(cancellationToken)).Type;
    }

    private async Task<(PduType Type, byte[] Body)> ReadPduAsync(CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await _input.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            var status = PduReader.TryReadPdu(ref buffer, 1024 * 1024, out var header, out var body);
            if (status == PduReadResult.Complete)
            {
                var bytes = body.ToArray();
                _input.AdvanceTo(buffer.Start);
                return (header.Type, bytes);
            }

            if (status != PduReadResult.Incomplete || result.IsCompleted)
            {
                throw new InvalidOperationException($"no PDU: {status}, completed={result.IsCompleted}");
            }

            _input.AdvanceTo(buffer.Start, buffer.End);
        }
    }

    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        await _input.CompleteAsync();
        await _output.CompleteAsync();
        _socket.Dispose();
    }
}
