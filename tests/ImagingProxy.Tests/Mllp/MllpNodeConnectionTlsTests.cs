using System.Buffers;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using ImagingProxy.Configuration;
using ImagingProxy.Mllp;
using ImagingProxy.Testing;

namespace ImagingProxy.Tests.Mllp;

/// <summary>The node side of a message over TLS: an in-process TLS server (SslStream, test certificate) as the node.</summary>
public sealed class MllpNodeConnectionTlsTests : IAsyncLifetime
{
    private static readonly TimeSpan s_timeout = TimeSpan.FromSeconds(10);
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly TestCertificate _certificate = new();
    private SslStream _node = null!;
    private MllpNodeConnection _connection = null!;

    public async Task InitializeAsync()
    {
        _listener.Start();
        var port = ((IPEndPoint)_listener.LocalEndpoint).Port;
        var accept = AcceptAsync();
        _connection = await MllpNodeConnection.ConnectAsync(
            $"tls://127.0.0.1:{port}",
            new TcpAddress("127.0.0.1", port, Tls: true),
            new SslClientAuthenticationOptions
            {
                TargetHost = "localhost",
                RemoteCertificateValidationCallback = (_, cert, _, _) => cert is not null && cert.GetCertHashString(HashAlgorithmName.SHA256) == _certificate.Thumbprint,
            },
            maxFrameSize: 64,
            s_timeout,
            CancellationToken.None);
        _node = await accept.WaitAsync(s_timeout);
    }

    public async Task DisposeAsync()
    {
        await _connection.DisposeAsync();
        await _node.DisposeAsync();
        _listener.Stop();
        _certificate.Dispose();
    }

    [Fact]
    public async Task The_frame_goes_out_encrypted_and_whole_and_the_ack_comes_back()
    {
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|^~\\&|A\rPID|1"u8.ToArray()), CancellationToken.None));
        var expected = "\vMSH|^~\\&|A\rPID|1\u001c\r"u8.ToArray();
        var got = new byte[expected.Length];
        await _node.ReadExactlyAsync(got).AsTask().WaitAsync(s_timeout);
        Assert.Equal(expected, got);

        await _node.WriteAsync("\vMSA|AA|1\u001c\r"u8.ToArray());
        var ack = new ArrayBufferWriter<byte>();
        Assert.True(await _connection.ReceiveAsync(ack, CancellationToken.None).AsTask().WaitAsync(s_timeout));
        Assert.Equal("MSA|AA|1", Encoding.ASCII.GetString(ack.WrittenSpan));
    }

    [Fact]
    public async Task A_frame_sent_while_no_message_was_in_flight_is_discarded_before_the_next_message()
    {
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|1"u8.ToArray()), CancellationToken.None));
        await _node.WriteAsync("\vMSA|AA|1\u001c\r"u8.ToArray());
        var first = new ArrayBufferWriter<byte>();
        Assert.True(await _connection.ReceiveAsync(first, CancellationToken.None).AsTask().WaitAsync(s_timeout));

        // A late frame while idle: the read-ahead takes it; the next send drops it.
        await _node.WriteAsync("\vMSA|AA|late\u001c\r"u8.ToArray());
        await _connection.ReadAhead!.WaitAsync(s_timeout);
        await SecondMessageGetsItsOwnAckAsync(unsolicited: 1);
    }

    [Fact]
    public async Task A_late_frame_that_came_with_the_ack_is_never_the_next_messages_ack()
    {
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|1"u8.ToArray()), CancellationToken.None));
        await _node.WriteAsync("\vMSA|AA|1\u001c\r\vMSA|AA|late\u001c\r"u8.ToArray());
        var first = new ArrayBufferWriter<byte>();
        Assert.True(await _connection.ReceiveAsync(first, CancellationToken.None).AsTask().WaitAsync(s_timeout));

        // Nothing else arrives before the next message: the late frame is still in the connection's buffer.
        await SecondMessageGetsItsOwnAckAsync(unsolicited: 1);
    }

    [Fact]
    public async Task A_connection_partway_through_an_unsolicited_frame_takes_no_further_message()
    {
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|1"u8.ToArray()), CancellationToken.None));
        await _node.WriteAsync("\vMSA|AA|1\u001c\r"u8.ToArray());
        Assert.True(await _connection.ReceiveAsync(new ArrayBufferWriter<byte>(), CancellationToken.None).AsTask().WaitAsync(s_timeout));

        // A late frame whose trailer has not arrived: it would end after the send and pass for the message's ACK.
        await _node.WriteAsync("\vMSA|AA|late"u8.ToArray());
        await _connection.ReadAhead!.WaitAsync(s_timeout);

        Assert.False(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|2"u8.ToArray()), CancellationToken.None));
    }

    [Fact]
    public async Task A_frame_sent_after_a_message_that_wanted_no_ack_is_discarded_not_taken_for_the_next_ack()
    {
        // MSH-15 NE: no ACK is read, yet the node may send one (or an application ACK) all the same.
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|1"u8.ToArray()), CancellationToken.None, noAck: true));
        _connection.SentWithoutAck();
        await _node.WriteAsync("\vMSA|AA|1\u001c\r"u8.ToArray());
        await _connection.ReadAhead!.WaitAsync(s_timeout);

        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|2"u8.ToArray()), CancellationToken.None));
        await _node.WriteAsync("\vMSA|AA|2\u001c\r"u8.ToArray());
        var ack = new ArrayBufferWriter<byte>();
        Assert.True(await _connection.ReceiveAsync(ack, CancellationToken.None).AsTask().WaitAsync(s_timeout));

        Assert.Equal("MSA|AA|2", Encoding.ASCII.GetString(ack.WrittenSpan));
    }

    [Fact]
    public async Task Waiting_for_an_ack_stops_when_cancelled()
    {
        // The TLS read is ended by shutting the socket's receive side, not by a token on the read itself.
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|1"u8.ToArray()), CancellationToken.None));
        using var cancel = new CancellationTokenSource();
        var receive = _connection.ReceiveAsync(new ArrayBufferWriter<byte>(), cancel.Token).AsTask();
        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => receive.WaitAsync(s_timeout));
        Assert.False(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|2"u8.ToArray()), CancellationToken.None));
    }

    [Fact]
    public async Task A_node_that_closed_while_idle_fails_the_next_send()
    {
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|1"u8.ToArray()), CancellationToken.None));
        await _node.WriteAsync("\vMSA|AA|1\u001c\r"u8.ToArray());
        Assert.True(await _connection.ReceiveAsync(new ArrayBufferWriter<byte>(), CancellationToken.None).AsTask().WaitAsync(s_timeout));

        await _node.DisposeAsync();
        await _connection.ReadAhead!.ContinueWith(static _ => { }, CancellationToken.None, TaskContinuationOptions.None, TaskScheduler.Default).WaitAsync(s_timeout);

        Assert.False(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|2"u8.ToArray()), CancellationToken.None));
    }

    private async Task<SslStream> AcceptAsync()
    {
        var socket = await _listener.AcceptSocketAsync();
        var tls = new SslStream(new NetworkStream(socket, ownsSocket: true));
        using var certificate = System.Security.Cryptography.X509Certificates.X509Certificate2.CreateFromPemFile(_certificate.CertificatePath, _certificate.KeyPath);
        await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificateContext = SslStreamCertificateContext.Create(certificate, null) });
        return tls;
    }

    /// <summary>Message 2 goes out and gets exactly its own ACK; <paramref name="unsolicited"/> frames were dropped so far.</summary>
    private async Task SecondMessageGetsItsOwnAckAsync(int unsolicited)
    {
        Assert.True(await _connection.SendAsync(new ReadOnlySequence<byte>("MSH|2"u8.ToArray()), CancellationToken.None));
        await _node.WriteAsync("\vMSA|AA|2\u001c\r"u8.ToArray());
        var second = new ArrayBufferWriter<byte>();
        Assert.True(await _connection.ReceiveAsync(second, CancellationToken.None).AsTask().WaitAsync(s_timeout));
        Assert.Equal("MSA|AA|2", Encoding.ASCII.GetString(second.WrittenSpan));
        Assert.Equal(unsolicited, _connection.UnsolicitedFrames);
    }
}
