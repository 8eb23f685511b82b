using System.Buffers;
using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using ImagingProxy.Mllp;
using ImagingProxy.Testing;

namespace ImagingProxy.PeerTests.Mllp;

/// <summary>MLLP over a TLS listener (<c>Tls: { Path, KeyPath }</c>, PEM pair): an SslStream sender, a python3-hl7 node behind.</summary>
public sealed class MllpTlsTests : IAsyncLifetime
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(60);

    private readonly string _directory = Directory.CreateTempSubdirectory("mllp-tls-").FullName;
    private readonly TestCertificate _certificate = new();
    private Hl7Node? _node;
    private TestProxy? _proxy;

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        if (_proxy is not null)
        {
            await _proxy.DisposeAsync();
        }

        if (_node is not null)
        {
            await _node.DisposeAsync();
        }

        _certificate.Dispose();
        Directory.Delete(_directory, recursive: true);
    }

    [Fact]
    public async Task Messages_over_a_tls_listener_are_relayed_and_acknowledged_by_the_node()
    {
        _node = await Hl7Node.StartAsync(_directory, "a");
        _proxy = await TestProxy.StartAsync(MllpProxyConfig.Create(new Dictionary<string, string[]> { ["orders"] = [_node.Address] }, [("*", "orders")], tls: _certificate));
        using var timeout = new CancellationTokenSource(s_timeout);
        using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync("127.0.0.1", _proxy.Port("hl7"), timeout.Token);
        await using var tls = new SslStream(new NetworkStream(socket, ownsSocket: false), leaveInnerStreamOpen: false);
        await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions
        {
            TargetHost = "localhost",
            RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && cert.GetCertHashString(HashAlgorithmName.SHA256) == _certificate.Thumbprint,
        }, timeout.Token);
        var input = PipeReader.Create(tls);
        var frames = new MllpFrameReader();
        var acks = new Hl7AckReader();

        for (var i = 0; i < 20; i++)
        {
            var frame = new ArrayBufferWriter<byte>();
            MllpFrameWriter.Write(frame, MllpClient.Message($"TLS{i:D3}"));
            await tls.WriteAsync(frame.WrittenMemory, timeout.Token);

            while (true)
            {
                var result = await input.ReadAsync(timeout.Token);
                var buffer = result.Buffer;
                if (frames.TryReadFrame(ref buffer, out var reply) == MllpReadResult.Frame)
                {
                    Assert.Equal(Hl7ReadStatus.Success, acks.TryRead(reply, out var ack));
                    Assert.Equal(AcknowledgmentCode.ApplicationAccept, ack.Code);
                    Assert.Equal($"TLS{i:D3}", Encoding.ASCII.GetString(ack.AcknowledgedControlId.Span));
                    input.AdvanceTo(buffer.Start);
                    break;
                }

                input.AdvanceTo(buffer.Start, buffer.End);
                Assert.False(result.IsCompleted, "the proxy closed the TLS connection");
            }
        }

        await input.CompleteAsync();
        Assert.Equal(20, (await _node.ReceivedAsync()).Count);
    }
}
