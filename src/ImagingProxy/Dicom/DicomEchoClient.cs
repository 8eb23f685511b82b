using System.IO.Pipelines;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Authentication;
using ImagingProxy.Configuration;

namespace ImagingProxy.Dicom;

/// <summary>
/// Verification SCU (PS3.4 Annex A, PS3.7 §9.3.5): A-ASSOCIATE-RQ → AC → C-ECHO-RQ → C-ECHO-RSP → A-RELEASE-RQ → RP.
/// Used as the DICOM health probe and as an in-process load client. It never throws for what the peer or the network
/// does: every ending is an <see cref="EchoResult"/>. Invalid AE titles (our configuration) throw <see cref="ArgumentException"/>.
/// </summary>
public static class DicomEchoClient
{
    /// <summary>Runs the exchange over a connected transport. The caller owns <paramref name="transport"/> and completes it.</summary>
    public static ValueTask<EchoResult> EchoAsync(IDuplexPipe transport, string calledAeTitle, string callingAeTitle, CancellationToken cancellationToken)
        => EchoAsync(transport, calledAeTitle, callingAeTitle, options: null, cancellationToken);

    /// <inheritdoc cref="EchoAsync(IDuplexPipe, string, string, CancellationToken)"/>
    public static ValueTask<EchoResult> EchoAsync(IDuplexPipe transport, string calledAeTitle, string callingAeTitle, DicomEchoOptions? options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(transport);
        Validate(calledAeTitle, callingAeTitle);
        return RunAsync(endPoint: null, transport, calledAeTitle, callingAeTitle, options ?? DicomEchoOptions.Default, cancellationToken);
    }

    /// <summary>Connects to <paramref name="endPoint"/> (TCP_NODELAY on), runs the exchange and closes the connection.</summary>
    public static ValueTask<EchoResult> EchoAsync(EndPoint endPoint, string calledAeTitle, string callingAeTitle, CancellationToken cancellationToken)
        => EchoAsync(endPoint, calledAeTitle, callingAeTitle, options: null, cancellationToken);

    /// <inheritdoc cref="EchoAsync(EndPoint, string, string, CancellationToken)"/>
    public static ValueTask<EchoResult> EchoAsync(EndPoint endPoint, string calledAeTitle, string callingAeTitle, DicomEchoOptions? options, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        Validate(calledAeTitle, callingAeTitle);
        return RunAsync(endPoint, transport: null, calledAeTitle, callingAeTitle, options ?? DicomEchoOptions.Default, cancellationToken);
    }

    private static void Validate(string calledAeTitle, string callingAeTitle)
    {
        if (!AeTitle.IsValid(calledAeTitle))
        {
            throw new ArgumentException("Not a valid AE title.", nameof(calledAeTitle));
        }

        if (!AeTitle.IsValid(callingAeTitle))
        {
            throw new ArgumentException("Not a valid AE title.", nameof(callingAeTitle));
        }
    }

    private static async ValueTask<EchoResult> RunAsync(
        EndPoint? endPoint,
        IDuplexPipe? transport,
        string calledAeTitle,
        string callingAeTitle,
        DicomEchoOptions options,
        CancellationToken cancellationToken)
    {
        using var timeout = options.Timeout is { } delay
            ? new CancellationTokenSource(delay, options.TimeProvider ?? TimeProvider.System)
            : null;
        using var linked = timeout is null ? null : CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        var token = linked?.Token ?? cancellationToken;
        try
        {
            return endPoint is null
                ? await ExchangeAsync(transport!, calledAeTitle, callingAeTitle, options, token)
                : await ConnectAndExchangeAsync(endPoint, calledAeTitle, callingAeTitle, options, token);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return new EchoResult(EchoOutcome.Canceled, "canceled");
        }
        catch (OperationCanceledException) when (timeout?.IsCancellationRequested == true)
        {
            return new EchoResult(EchoOutcome.Timeout, $"no answer within {options.Timeout}");
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            return new EchoResult(EchoOutcome.ConnectionClosed, ex.Message);
        }
    }

    private static async ValueTask<EchoResult> ConnectAndExchangeAsync(
        EndPoint endPoint,
        string calledAeTitle,
        string callingAeTitle,
        DicomEchoOptions options,
        CancellationToken cancellationToken)
    {
        using var socket = endPoint.AddressFamily == AddressFamily.Unspecified
            ? new Socket(SocketType.Stream, ProtocolType.Tcp)
            : new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        socket.NoDelay = true;
        try
        {
            await socket.ConnectAsync(endPoint, cancellationToken);
        }
        catch (SocketException ex)
        {
            return new EchoResult(EchoOutcome.ConnectionFailed, $"connect to {endPoint} failed: {ex.SocketErrorCode}");
        }

        Stream stream;
        if (options.Tls is { } tlsOptions)
        {
            // The session does not own the socket; the using above disposes it after the session.
            SslStream tls;
            try
            {
                tls = await NodeTls.OpenAsync(socket, tlsOptions, cancellationToken);
            }
            catch (Exception ex) when (ex is AuthenticationException or IOException)
            {
                return new EchoResult(EchoOutcome.ConnectionFailed, $"TLS handshake with {endPoint} failed: {ex.Message}");
            }

            options.TlsEstablished?.Invoke(tls.RemoteCertificate);
            stream = tls;
        }
        else
        {
            stream = new NetworkStream(socket, ownsSocket: true);
        }

        await using (stream)
        {
            var input = PipeReader.Create(stream, new StreamPipeReaderOptions(leaveOpen: true));
            var output = PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true));
            try
            {
                return await ExchangeAsync(new StreamDuplexPipe(input, output), calledAeTitle, callingAeTitle, options, cancellationToken);
            }
            finally
            {
                // Closing is best effort: the outcome is already decided and a reset peer must not replace it.
                await input.CompleteAsync();
                try
                {
                    await output.CompleteAsync();
                }
                catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
                {
                }
            }
        }
    }

    private static async ValueTask<EchoResult> ExchangeAsync(
        IDuplexPipe transport,
        string calledAeTitle,
        string callingAeTitle,
        DicomEchoOptions options,
        CancellationToken cancellationToken)
    {
        var input = transport.Input;
        var output = transport.Output;
        var maxPduLength = options.MaxPduLength ?? DicomDefaults.MaxPduLength;
        var limit = maxPduLength == 0 ? uint.MaxValue : Math.Max(maxPduLength, DicomDefaults.AssociationPduLimit);
        var session = new EchoSession(output, options.MessageId ?? 1);

        PduWriter.WriteAssociateRequest(
            output,
            calledAeTitle,
            callingAeTitle,
            DicomDefaults.EchoPresentationContextId,
            DicomUids.Verification,
            DicomUids.ImplicitVrLittleEndian,
            maxPduLength,
            DicomUids.ImplementationClassUid,
            DicomUids.ImplementationVersionName);
        await output.FlushAsync(cancellationToken);

        while (true)
        {
            var read = await input.ReadAsync(cancellationToken);
            var buffer = read.Buffer;
            EchoResult? result = null;
            while (result is null)
            {
                var status = PduReader.TryReadPdu(ref buffer, limit, out var header, out var body);
                if (status == PduReadResult.Incomplete)
                {
                    break;
                }

                result = status == PduReadResult.Complete ? session.Handle(header, body) : session.FramingError(status, header);
            }

            input.AdvanceTo(buffer.Start, read.Buffer.End);
            if (session.NeedsFlush)
            {
                session.NeedsFlush = false;
                await FlushAsync(output, best: result is not null, cancellationToken);
            }

            if (result is { } done)
            {
                return done;
            }

            if (read.IsCompleted)
            {
                return session.ConnectionClosed();
            }
        }
    }

    // A final A-ABORT is best effort: the peer may already be gone, and the outcome is decided.
    private static async ValueTask FlushAsync(PipeWriter output, bool best, CancellationToken cancellationToken)
    {
        try
        {
            await output.FlushAsync(cancellationToken);
        }
        catch (Exception ex) when (best && ex is IOException or SocketException or ObjectDisposedException)
        {
        }
    }
}
