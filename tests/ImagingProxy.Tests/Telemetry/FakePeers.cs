using System.Net;
using System.Net.Sockets;
using System.Text;
using ImagingProxy.Tests.Dicom;

namespace ImagingProxy.Tests.Telemetry;

/// <summary>A loopback TCP server that serves each connection with a handler until disposed.</summary>
internal sealed class LoopbackServer : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public LoopbackServer(Func<NetworkStream, CancellationToken, Task> handler)
    {
        _listener.Start();
        _accepting = AcceptAsync(handler);
    }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    /// <summary>A DICOM acceptor that answers dcmtk's captured echo exchange (AC, C-ECHO-RSP, RELEASE-RP).</summary>
    public static LoopbackServer DicomEchoScp() => new(async (stream, token) =>
    {
        while (await ReadPduAsync(stream, token) is { } type)
        {
            byte[]? answer = type switch
            {
                0x01 => DicomCaptures.AssociateAccept,
                0x04 => DicomCaptures.EchoResponsePData,
                0x05 => DicomCaptures.ReleaseResponse,
                _ => null,
            };
            if (answer is null)
            {
                return;
            }

            await stream.WriteAsync(answer, token);
            if (type == 0x05)
            {
                return;
            }
        }
    });

    /// <summary>An HL7 node that acknowledges every frame with AA and MSA-2 = the message's MSH-10.</summary>
    public static LoopbackServer Hl7Node() => new(async (stream, token) =>
    {
        while (await ReadFrameAsync(stream, token) is { } message)
        {
            var controlId = message.Split('\r')[0].Split('|').ElementAtOrDefault(9) ?? "";
            await stream.WriteAsync(Frame($"MSH|^~\\&|NODE|HOSP|RIS|HOSP|20260101000000||ACK^O01^ACK|N{controlId}|P|2.5\rMSA|AA|{controlId}\r"), token);
        }
    });

    public static byte[] Frame(string message) => [0x0B, .. Encoding.ASCII.GetBytes(message), 0x1C, 0x0D];

    /// <summary>Reads one whole PDU and returns its type, or null at the end of the stream.</summary>
    public static async Task<byte?> ReadPduAsync(Stream stream, CancellationToken token)
    {
        var header = new byte[6];
        if (!await ReadExactlyOrEndAsync(stream, header, token))
        {
            return null;
        }

        var length = (header[2] << 24) | (header[3] << 16) | (header[4] << 8) | header[5];
        var body = new byte[length];
        return await ReadExactlyOrEndAsync(stream, body, token) ? header[0] : null;
    }

    /// <summary>Reads one MLLP frame's content, or null at the end of the stream.</summary>
    public static async Task<string?> ReadFrameAsync(Stream stream, CancellationToken token)
    {
        var content = new List<byte>();
        var one = new byte[1];
        var inFrame = false;
        while (await stream.ReadAsync(one, token) == 1)
        {
            if (!inFrame)
            {
                inFrame = one[0] == 0x0B;
                continue;
            }

            if (one[0] == 0x1C)
            {
                await stream.ReadExactlyAsync(one, token); // CR
                return Encoding.ASCII.GetString([.. content]);
            }

            content.Add(one[0]);
        }

        return null;
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting.ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        _stop.Dispose();
    }

    private static async Task<bool> ReadExactlyOrEndAsync(Stream stream, byte[] buffer, CancellationToken token)
    {
        try
        {
            await stream.ReadExactlyAsync(buffer, token);
            return true;
        }
        catch (EndOfStreamException)
        {
            return false;
        }
    }

    private async Task AcceptAsync(Func<NetworkStream, CancellationToken, Task> handler)
    {
        while (!_stop.IsCancellationRequested)
        {
            var client = await _listener.AcceptTcpClientAsync(_stop.Token);
            _ = Task.Run(async () =>
            {
                using (client)
                {
                    try
                    {
                        await handler(client.GetStream(), _stop.Token);
                    }
                    catch (Exception ex) when (ex is IOException or OperationCanceledException or SocketException)
                    {
                    }
                }
            });
        }
    }
}
