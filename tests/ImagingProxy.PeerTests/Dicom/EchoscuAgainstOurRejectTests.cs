using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using ImagingProxy.Dicom;

namespace ImagingProxy.PeerTests.Dicom;

/// <summary>
/// Needs dcmtk's echoscu (/usr/bin/echoscu) as the real requestor. An in-process acceptor built on PduReader,
/// AssociateRequest and PduWriter answers its A-ASSOCIATE-RQ with an A-ASSOCIATE-RJ; echoscu printing the reason
/// proves a real peer understands our bytes.
/// </summary>
public class EchoscuAgainstOurRejectTests
{
    [Theory]
    [InlineData(AssociateRejectResult.RejectedTransient, AssociateRejectSource.ServiceProviderPresentation, AssociateRejectReasons.ServiceProviderPresentationTemporaryCongestion, "Temporary Congestion")]
    [InlineData(AssociateRejectResult.RejectedPermanent, AssociateRejectSource.ServiceUser, AssociateRejectReasons.ServiceUserCalledAeTitleNotRecognized, "Called AE Title Not Recognized")]
    public async Task Echoscu_reports_the_reject_we_write(AssociateRejectResult result, AssociateRejectSource source, byte reason, string expectedText)
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var port = ((IPEndPoint)listener.LocalEndPoint!).Port;
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        var acceptor = RejectOneAsync(listener, result, source, reason, timeout.Token);

        await using var echoscu = DcmtkProcess.Start("echoscu", "-v", "-aet", "ECHOSCU", "-aec", "NO-SUCH-NODE", "127.0.0.1", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var exitCode = await echoscu.WaitForExitAsync(TimeSpan.FromSeconds(20));
        var request = await acceptor.WaitAsync(timeout.Token);

        Assert.Equal("NO-SUCH-NODE", request.CalledAeTitle);
        Assert.Equal("ECHOSCU", request.CallingAeTitle);
        Assert.Equal(DicomUids.Verification, request.PresentationContexts[0].AbstractSyntax);
        Assert.NotEqual(0, exitCode);
        Assert.Contains("Association Rejected", echoscu.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains(result == AssociateRejectResult.RejectedTransient ? "Rejected Transient" : "Rejected Permanent", echoscu.Output, StringComparison.OrdinalIgnoreCase);
        Assert.Contains(expectedText, echoscu.Output, StringComparison.OrdinalIgnoreCase);
    }

    private static async Task<AssociateRequest> RejectOneAsync(Socket listener, AssociateRejectResult result, AssociateRejectSource source, byte reason, CancellationToken cancellationToken)
    {
        using var socket = await listener.AcceptAsync(cancellationToken);
        socket.NoDelay = true;
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var input = PipeReader.Create(stream);
        var output = PipeWriter.Create(stream);
        AssociateRequest? request = null;
        while (request is null)
        {
            var read = await input.ReadAsync(cancellationToken);
            var buffer = read.Buffer;
            var status = PduReader.TryReadPdu(ref buffer, DicomDefaults.AssociationPduLimit, out var header, out var body);
            if (status == PduReadResult.Complete)
            {
                Assert.Equal(PduType.AssociateRequest, header.Type);
                Assert.True(AssociateRequest.TryParse(body, out request, out var error), error.ToString());
            }
            else
            {
                Assert.Equal(PduReadResult.Incomplete, status);
                Assert.False(read.IsCompleted, "echoscu closed before its A-ASSOCIATE-RQ was complete");
            }

            input.AdvanceTo(buffer.Start, buffer.End);
        }

        PduWriter.WriteAssociateReject(output, result, source, reason);
        await output.FlushAsync(cancellationToken);

        // PS3.8 §9.1.2: after an RJ the requestor closes the transport; wait for it (bounded by the token).
        while (true)
        {
            var read = await input.ReadAsync(cancellationToken);
            input.AdvanceTo(read.Buffer.End);
            if (read.IsCompleted)
            {
                break;
            }
        }

        await input.CompleteAsync();
        await output.CompleteAsync();
        return request;
    }
}
