using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net.Sockets;
using ImagingProxy.Mllp;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>
/// Needs python3-hl7 under /usr/bin/python3: runs tests/peers/hl7_node.py (the real-HL7 receiver used by integration
/// tests and benchmarks) and talks to it with our frame writer, frame reader and ACK reader.
/// </summary>
public sealed class Hl7NodeTests : IAsyncLifetime
{
    private readonly string _directory = Directory.CreateTempSubdirectory("hl7-node-").FullName;
    private Process? _node;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_node is not null)
        {
            if (!_node.HasExited)
            {
                _node.Kill(entireProcessTree: true);
                using var timeout = new CancellationTokenSource(PythonHl7.Timeout);
                await _node.WaitForExitAsync(timeout.Token);
            }

            _node.Dispose();
        }

        Directory.Delete(_directory, recursive: true);
    }

    private async Task<int> StartNodeAsync(params string[] options)
    {
        var script = Path.Combine(PythonHl7.RepositoryRoot, "tests", "peers", "hl7_node.py");
        _node = Process.Start(PythonHl7.StartInfo(PythonHl7.Python, [script, "--host", "127.0.0.1", "--port", "0", .. options]))!;
        using var timeout = new CancellationTokenSource(PythonHl7.Timeout);
        var line = await _node.StandardOutput.ReadLineAsync(timeout.Token);
        Assert.True(line?.StartsWith("LISTENING ", StringComparison.Ordinal) == true, $"hl7_node.py said '{line}': {(_node.HasExited ? await _node.StandardError.ReadToEndAsync(timeout.Token) : string.Empty)}");
        return int.Parse(line!["LISTENING ".Length..], System.Globalization.CultureInfo.InvariantCulture);
    }

    private static byte[] Message(int i) => System.Text.Encoding.ASCII.GetBytes(
        $"MSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01^ORM_O01|MSG{i:D5}|P|2.5.1\rPID|1||{i}^^^HOSP^MR\rOBR|1|ORD{i}||71020^CHEST^C4\r");

    /// <summary>Sends each message and waits for its reply, as MLLP senders do (one outstanding message).</summary>
    private static async Task<List<(AcknowledgmentCode Code, string ControlId)>> SendAsync(int port, int count, CancellationToken cancellationToken)
    {
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync("127.0.0.1", port, cancellationToken);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var input = PipeReader.Create(stream);
        var frames = new MllpFrameReader();
        var acks = new Hl7AckReader();
        var replies = new List<(AcknowledgmentCode, string)>();
        for (var i = 0; i < count; i++)
        {
            var request = new ArrayBufferWriter<byte>();
            MllpFrameWriter.Write(request, Message(i));
            await stream.WriteAsync(request.WrittenMemory, cancellationToken);

            var answered = false;
            while (!answered)
            {
                var result = await input.ReadAsync(cancellationToken);
                var buffer = result.Buffer;
                if (frames.TryReadFrame(ref buffer, out var reply) is MllpReadResult.Frame)
                {
                    Assert.Equal(Hl7ReadStatus.Success, acks.TryRead(reply, out var ack));
                    replies.Add((ack.Code, ack.AcknowledgedControlId.GetString()));
                    answered = true;
                }

                input.AdvanceTo(buffer.Start, buffer.End);
                Assert.False(!answered && result.IsCompleted, "hl7_node.py closed the connection.");
            }
        }

        await input.CompleteAsync();
        return replies;
    }

    [Fact]
    public async Task Node_acknowledges_fifty_messages_with_aa_and_their_control_ids_and_logs_each()
    {
        var log = Path.Combine(_directory, "node.log");
        var port = await StartNodeAsync("--log", log);
        using var timeout = new CancellationTokenSource(PythonHl7.Timeout);

        var replies = await SendAsync(port, 50, timeout.Token);

        Assert.Equal(Enumerable.Range(0, 50).Select(i => (AcknowledgmentCode.ApplicationAccept, $"MSG{i:D5}")), replies);
        var lines = await File.ReadAllLinesAsync(log, timeout.Token);
        Assert.Equal(Enumerable.Range(0, 50).Select(i => $"MSG{i:D5} ORM^O01^ORM_O01"), lines);
    }

    [Fact]
    public async Task Node_answers_with_the_configured_error_code()
    {
        var port = await StartNodeAsync("--ack", "AE");
        using var timeout = new CancellationTokenSource(PythonHl7.Timeout);

        var replies = await SendAsync(port, 3, timeout.Token);

        Assert.Equal(Enumerable.Range(0, 3).Select(i => (AcknowledgmentCode.ApplicationError, $"MSG{i:D5}")), replies);
    }

    [Fact]
    public async Task Node_never_answers_with_no_ack_but_logs_the_message()
    {
        var log = Path.Combine(_directory, "node.log");
        var port = await StartNodeAsync("--no-ack", "--log", log);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(2));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => SendAsync(port, 1, timeout.Token));
        Assert.Equal(["MSG00000 ORM^O01^ORM_O01"], await File.ReadAllLinesAsync(log));
    }
}
