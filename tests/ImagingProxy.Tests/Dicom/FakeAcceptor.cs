using System.Buffers;
using System.IO.Pipelines;
using ImagingProxy.Dicom;

namespace ImagingProxy.Tests.Dicom;

/// <summary>
/// The acceptor end of an in-process <see cref="Pipe"/> pair, scripted by each test. <see cref="Client"/> is the
/// transport handed to <see cref="DicomEchoClient"/>.
/// </summary>
internal sealed class FakeAcceptor : IAsyncDisposable
{
    private readonly Pipe _toAcceptor = new();
    private readonly Pipe _toClient = new();

    public FakeAcceptor()
    {
        Client = new Duplex(_toClient.Reader, _toAcceptor.Writer);
    }

    public IDuplexPipe Client { get; }

    public PipeWriter Output => _toClient.Writer;

    /// <summary>Reads the next whole PDU the client sent, or null when the client completed its output.</summary>
    public async Task<(PduHeader Header, byte[] Body)?> ReadPduAsync()
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var reader = _toAcceptor.Reader;
        while (true)
        {
            var read = await reader.ReadAsync(timeout.Token);
            var buffer = read.Buffer;
            var status = PduReader.TryReadPdu(ref buffer, 65536, out var header, out var body);
            if (status == PduReadResult.Complete)
            {
                var bytes = body.ToArray();
                reader.AdvanceTo(buffer.Start);
                return (header, bytes);
            }

            Assert.Equal(PduReadResult.Incomplete, status);
            reader.AdvanceTo(buffer.Start, buffer.End);
            if (read.IsCompleted)
            {
                return null;
            }
        }
    }

    public async Task<(PduHeader Header, byte[] Body)> ExpectPduAsync(PduType type)
    {
        var pdu = await ReadPduAsync();
        Assert.NotNull(pdu);
        Assert.Equal(type, pdu.Value.Header.Type);
        return pdu.Value;
    }

    public async Task SendAsync(byte[] bytes) => await Output.WriteAsync(bytes);

    public async Task SendAsync(Action<PipeWriter> write)
    {
        write(Output);
        await Output.FlushAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await _toClient.Writer.CompleteAsync();
        await _toAcceptor.Reader.CompleteAsync();
        await _toAcceptor.Writer.CompleteAsync();
        await _toClient.Reader.CompleteAsync();
    }

    private sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
