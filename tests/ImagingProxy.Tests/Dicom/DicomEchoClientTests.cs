using ImagingProxy.Dicom;
using Microsoft.Extensions.Time.Testing;

namespace ImagingProxy.Tests.Dicom;

public class DicomEchoClientTests
{
    private static readonly TimeSpan s_testTimeout = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task Succeeds_when_the_acceptor_accepts_answers_success_and_releases()
    {
        await using var acceptor = new FakeAcceptor();
        var echo = DicomEchoClient.EchoAsync(acceptor.Client, "STORESCP", "PROBE", CancellationToken.None).AsTask();

        var (_, rqBody) = await acceptor.ExpectPduAsync(PduType.AssociateRequest);
        Assert.True(AssociateRequest.TryParse(new(rqBody), out var rq, out _));
        Assert.Equal("STORESCP", rq.CalledAeTitle);
        Assert.Equal("PROBE", rq.CallingAeTitle);
        Assert.Equal(DicomUids.Verification, rq.PresentationContexts[0].AbstractSyntax);
        Assert.Equal(DicomUids.ImplementationClassUid, rq.UserInformation.ImplementationClassUid);
        await acceptor.SendAsync(DicomCaptures.AssociateAccept);

        var (_, pdata) = await acceptor.ExpectPduAsync(PduType.PDataTransfer);
        Assert.Equal(DicomCaptures.EchoRequestPData[6..], pdata);
        await acceptor.SendAsync(DicomCaptures.EchoResponsePData);

        await acceptor.ExpectPduAsync(PduType.ReleaseRequest);
        await acceptor.SendAsync(DicomCaptures.ReleaseResponse);

        var result = await echo.WaitAsync(s_testTimeout);
        Assert.Equal(EchoOutcome.Success, result.Outcome);
        Assert.Equal((ushort)0, result.Status);
        Assert.True(result.IsSuccess);
    }

    [Fact]
    public async Task Reassembles_a_response_split_into_single_bytes_and_fragments()
    {
        await using var acceptor = new FakeAcceptor();
        var echo = DicomEchoClient.EchoAsync(acceptor.Client, "STORESCP", "PROBE", CancellationToken.None).AsTask();
        await acceptor.ExpectPduAsync(PduType.AssociateRequest);
        foreach (var b in DicomCaptures.AssociateAccept)
        {
            await acceptor.SendAsync([b]);
        }

        await acceptor.ExpectPduAsync(PduType.PDataTransfer);
        var command = DicomCaptures.EchoResponseCommand;
        await acceptor.SendAsync(DimseObserverTests.PData(DimseObserverTests.Pdv(1, 0x01, command[..30])));
        await acceptor.SendAsync(DimseObserverTests.PData(DimseObserverTests.Pdv(1, 0x03, command[30..])));
        await acceptor.ExpectPduAsync(PduType.ReleaseRequest);
        await acceptor.SendAsync(DicomCaptures.ReleaseResponse);

        Assert.Equal(EchoOutcome.Success, (await echo.WaitAsync(s_testTimeout)).Outcome);
    }

    [Fact]
    public async Task Reports_a_reject_with_its_result_source_and_reason()
    {
        await using var acceptor = new FakeAcceptor();
        var echo = DicomEchoClient.EchoAsync(acceptor.Client, "UNKNOWN", "PROBE", CancellationToken.None).AsTask();
        await acceptor.ExpectPduAsync(PduType.AssociateRequest);

        await acceptor.SendAsync(w => PduWriter.WriteAssociateReject(w, AssociateRejectResult.RejectedPermanent, AssociateRejectSource.ServiceUser, AssociateRejectReasons.ServiceUserCalledAeTitleNotRecognized));

        var result = await echo.WaitAsync(s_testTimeout);
        Assert.Equal(EchoOutcome.Rejected, result.Outcome);
        Assert.Equal(AssociateRejectResult.RejectedPermanent, result.RejectResult);
        Assert.Equal(AssociateRejectSource.ServiceUser, result.RejectSource);
        Assert.Equal((byte)7, result.RejectReason);
        Assert.Contains("called-AE-title-not-recognized", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reports_an_abort_with_its_source_and_reason()
    {
        await using var acceptor = new FakeAcceptor();
        var echo = DicomEchoClient.EchoAsync(acceptor.Client, "STORESCP", "PROBE", CancellationToken.None).AsTask();
        await acceptor.ExpectPduAsync(PduType.AssociateRequest);
        await acceptor.SendAsync(DicomCaptures.AssociateAccept);
        await acceptor.ExpectPduAsync(PduType.PDataTransfer);

        await acceptor.SendAsync(w => PduWriter.WriteAbort(w, AbortSource.ServiceProvider, AbortReason.UnexpectedPdu));

        var result = await echo.WaitAsync(s_testTimeout);
        Assert.Equal(EchoOutcome.Aborted, result.Outcome);
        Assert.Equal(AbortSource.ServiceProvider, result.AbortSource);
        Assert.Equal(AbortReason.UnexpectedPdu, result.AbortReason);
    }

    [Fact]
    public async Task Reports_a_connection_closed_before_the_accept()
    {
        await using var acceptor = new FakeAcceptor();
        var echo = DicomEchoClient.EchoAsync(acceptor.Client, "STORESCP", "PROBE", CancellationToken.None).AsTask();
        await acceptor.ExpectPduAsync(PduType.AssociateRequest);
        await acceptor.SendAsync([0x02, 0x00, 0x00]); // half a header, then the peer goes away

        await acceptor.Output.CompleteAsync();

        var result = await echo.WaitAsync(s_testTimeout);
        Assert.Equal(EchoOutcome.ConnectionClosed, result.Outcome);
        Assert.Contains("A-ASSOCIATE-AC", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reports_a_bad_status_and_still_releases()
    {
        await using var acceptor = new FakeAcceptor();
        var echo = DicomEchoClient.EchoAsync(acceptor.Client, "STORESCP", "PROBE", CancellationToken.None).AsTask();
        await acceptor.ExpectPduAsync(PduType.AssociateRequest);
        await acceptor.SendAsync(DicomCaptures.AssociateAccept);
        await acceptor.ExpectPduAsync(PduType.PDataTransfer);

        var command = new byte[DimseCommandWriter.EchoResponseLength];
        DimseCommandWriter.WriteEchoResponse(command, 1, 0x0122);
        await acceptor.SendAsync(w => PduWriter.WritePDataTransfer(w, 1, MessageControlHeader.Command | MessageControlHeader.LastFragment, command));
        await acceptor.ExpectPduAsync(PduType.ReleaseRequest);
        await acceptor.SendAsync(DicomCaptures.ReleaseResponse);

        var result = await echo.WaitAsync(s_testTimeout);
        Assert.Equal(EchoOutcome.BadStatus, result.Outcome);
        Assert.Equal((ushort)0x0122, result.Status);
        Assert.Contains("0x0122", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Reports_verification_not_accepted_and_releases()
    {
        await using var acceptor = new FakeAcceptor();
        var echo = DicomEchoClient.EchoAsync(acceptor.Client, "STORESCP", "PROBE", CancellationToken.None).AsTask();
        await acceptor.ExpectPduAsync(PduType.AssociateRequest);

        await acceptor.SendAsync(AssociateParserTests.Patch(DicomCaptures.AssociateAccept, DicomCaptures.AcceptResultOffset, 3));
        await acceptor.ExpectPduAsync(PduType.ReleaseRequest);
        await acceptor.SendAsync(DicomCaptures.ReleaseResponse);

        var result = await echo.WaitAsync(s_testTimeout);
        Assert.Equal(EchoOutcome.VerificationNotAccepted, result.Outcome);
        Assert.Contains("AbstractSyntaxNotSupported", result.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Aborts_with_unexpected_pdu_when_data_arrives_before_the_accept()
    {
        await using var acceptor = new FakeAcceptor();
        var echo = DicomEchoClient.EchoAsync(acceptor.Client, "STORESCP", "PROBE", CancellationToken.None).AsTask();
        await acceptor.ExpectPduAsync(PduType.AssociateRequest);

        await acceptor.SendAsync(DicomCaptures.EchoResponsePData);

        var (_, abort) = await acceptor.ExpectPduAsync(PduType.Abort);
        Assert.Equal(new byte[] { 0, 0, 2, 2 }, abort);
        Assert.Equal(EchoOutcome.ProtocolError, (await echo.WaitAsync(s_testTimeout)).Outcome);
    }

    [Fact]
    public async Task Aborts_with_unrecognized_pdu_on_garbage()
    {
        await using var acceptor = new FakeAcceptor();
        var echo = DicomEchoClient.EchoAsync(acceptor.Client, "STORESCP", "PROBE", CancellationToken.None).AsTask();
        await acceptor.ExpectPduAsync(PduType.AssociateRequest);

        await acceptor.SendAsync("HTTP/1.1 200 OK\r\n"u8.ToArray());

        var (_, abort) = await acceptor.ExpectPduAsync(PduType.Abort);
        Assert.Equal(new byte[] { 0, 0, 2, 1 }, abort);
        Assert.Equal(EchoOutcome.ProtocolError, (await echo.WaitAsync(s_testTimeout)).Outcome);
    }

    [Fact]
    public async Task Refuses_an_oversized_pdu_before_buffering_it()
    {
        await using var acceptor = new FakeAcceptor();
        var echo = DicomEchoClient.EchoAsync(acceptor.Client, "STORESCP", "PROBE", CancellationToken.None).AsTask();
        await acceptor.ExpectPduAsync(PduType.AssociateRequest);

        await acceptor.SendAsync([0x02, 0x00, 0x7F, 0xFF, 0xFF, 0xFF]);

        var result = await echo.WaitAsync(s_testTimeout);
        Assert.Equal(EchoOutcome.ProtocolError, result.Outcome);
        await acceptor.ExpectPduAsync(PduType.Abort);
    }

    [Fact]
    public async Task Times_out_when_the_acceptor_hangs()
    {
        var time = new FakeTimeProvider();
        await using var acceptor = new FakeAcceptor();
        var options = new DicomEchoOptions { Timeout = TimeSpan.FromSeconds(5), TimeProvider = time };
        var echo = DicomEchoClient.EchoAsync(acceptor.Client, "STORESCP", "PROBE", options, CancellationToken.None).AsTask();
        await acceptor.ExpectPduAsync(PduType.AssociateRequest);

        time.Advance(TimeSpan.FromSeconds(5));

        var result = await echo.WaitAsync(s_testTimeout);
        Assert.Equal(EchoOutcome.Timeout, result.Outcome);
    }

    [Fact]
    public async Task Reports_canceled_when_the_caller_cancels_a_hanging_exchange()
    {
        await using var acceptor = new FakeAcceptor();
        using var cts = new CancellationTokenSource();
        var echo = DicomEchoClient.EchoAsync(acceptor.Client, "STORESCP", "PROBE", cts.Token).AsTask();
        await acceptor.ExpectPduAsync(PduType.AssociateRequest);
        await acceptor.SendAsync(DicomCaptures.AssociateAccept);
        await acceptor.ExpectPduAsync(PduType.PDataTransfer);

        await cts.CancelAsync();

        Assert.Equal(EchoOutcome.Canceled, (await echo.WaitAsync(s_testTimeout)).Outcome);
    }

    [Fact]
    public async Task Refuses_invalid_ae_titles_of_its_own_configuration()
    {
        await using var acceptor = new FakeAcceptor();

        await Assert.ThrowsAsync<ArgumentException>(async () => await DicomEchoClient.EchoAsync(acceptor.Client, "", "PROBE", CancellationToken.None));
        await Assert.ThrowsAsync<ArgumentException>(async () => await DicomEchoClient.EchoAsync(acceptor.Client, "OK", "WAY_TOO_LONG_AE_TITLE", CancellationToken.None));
    }
}
