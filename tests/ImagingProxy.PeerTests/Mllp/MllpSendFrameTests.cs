using System.Buffers;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using ImagingProxy.Mllp;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>
/// Needs python3-hl7's real client, /usr/bin/mllp_send: the frames it writes are read by our frame reader behind an
/// in-process TCP listener, one message per frame, bytes as sent.
/// </summary>
public sealed class MllpSendFrameTests : IDisposable
{
    private readonly string _directory = Directory.CreateTempSubdirectory("mllp-send-").FullName;

    public void Dispose() => Directory.Delete(_directory, recursive: true);

    [Fact]
    public async Task Reads_each_message_mllp_send_sends_as_one_frame_with_the_bytes_sent()
    {
        string[] messages =
        [
            "MSH|^~\\&|RIS|RADIOLOGY|PACS|HOSP|20250101120000||ORM^O01^ORM_O01|MSG00001|P|2.5.1\rPID|1||12345^^^HOSP^MR||DOE^JOHN\rOBR|1|ORD1001||71020^CHEST^C4",
            "MSH|^~\\&|ADT1|HOSP|PACS|HOSP|20250101120001||ADT^A01^ADT_A01|MSG00002|P|2.5.1\rEVN|A01|20250101\rPID|1||999^^^HOSP^MR||ROE^JANE",
            "MSH|^~\\&|REP|RAD|EHR|HOSP|20250101120002||ORU^R01^ORU_R01|MSG00003|P|2.5.1||||||UNICODE UTF-8\rOBX|1|TX|||Befund: unauffällig",
        ];

        // --loose reads bare HL7 with any newline style; write CRLF between segments and blank lines between messages.
        var file = Path.Combine(_directory, "messages.hl7");
        await File.WriteAllTextAsync(file, string.Join("\r\n\r\n", messages.Select(m => m.Replace("\r", "\r\n", StringComparison.Ordinal))) + "\r\n", new UTF8Encoding(false));

        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        using var timeout = new CancellationTokenSource(PythonHl7.Timeout);

        var received = ReceiveAndAcknowledgeAsync(listener, messages.Length, timeout.Token);
        var (exitCode, output, error) = await PythonHl7.RunAsync(PythonHl7.StartInfo("/usr/bin/mllp_send", "--loose", "-p", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "-f", file, "127.0.0.1"));
        var frames = await received;

        Assert.True(exitCode == 0, error);
        Assert.Equal(messages, frames.Select(f => Encoding.UTF8.GetString(f)));
        Assert.All(frames, f => Assert.NotEqual((byte)'\r', f[^1])); // mllp_send drops the final CR
        Assert.Contains("MSA|AA|MSG00003", output, StringComparison.Ordinal);
    }

    /// <summary>Accepts one connection, reads frames with our reader and answers each with our ACK (mllp_send waits for one reply per message).</summary>
    private static async Task<List<byte[]>> ReceiveAndAcknowledgeAsync(TcpListener listener, int count, CancellationToken cancellationToken)
    {
        using var socket = await listener.AcceptSocketAsync(cancellationToken);
        socket.NoDelay = true;
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var input = PipeReader.Create(stream);
        var frames = new MllpFrameReader();
        var headers = new Hl7HeaderReader();
        var received = new List<byte[]>();
        while (received.Count < count)
        {
            var result = await input.ReadAsync(cancellationToken);
            var buffer = result.Buffer;
            MllpReadResult read;
            while ((read = frames.TryReadFrame(ref buffer, out var message)) != MllpReadResult.NeedMoreData)
            {
                Assert.Equal(MllpReadResult.Frame, read);
                received.Add(message.ToArray());
                Assert.Equal(Hl7ReadStatus.Success, headers.TryRead(message, out var header));
                var reply = new ArrayBufferWriter<byte>();
                MllpFrameWriter.WriteStartBlock(reply);
                Hl7AckWriter.Write(reply, header, AcknowledgmentCode.ApplicationAccept, $"ACK{received.Count}", DateTimeOffset.UtcNow);
                MllpFrameWriter.WriteEndBlock(reply);
                await stream.WriteAsync(reply.WrittenMemory, cancellationToken);
            }

            input.AdvanceTo(buffer.Start, buffer.End);
            Assert.False(result.IsCompleted && received.Count < count, "mllp_send closed before sending every message.");
        }

        await input.CompleteAsync();
        return received;
    }
}
