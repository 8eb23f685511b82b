using System.Net;
using ImagingProxy.Dicom;

namespace ImagingProxy.PeerTests.Dicom;

/// <summary>Needs dcmtk's storescp (/usr/bin/storescp, dcmtk 3.6.7) as the real acceptor.</summary>
public class DicomEchoClientStorescpTests
{
    private static readonly DicomEchoOptions s_echoOptions = new() { Timeout = TimeSpan.FromSeconds(20) };

    [Fact]
    public async Task Echo_succeeds_against_storescp()
    {
        var (storescp, port) = await DcmtkProcess.StartStorescpAsync("STORESCP");
        await using var _ = storescp;

        var result = await DicomEchoClient.EchoAsync(new IPEndPoint(IPAddress.Loopback, port), "STORESCP", "IMAGINGPROXY", s_echoOptions, CancellationToken.None);

        Assert.True(result.IsSuccess, $"{result} / storescp: {storescp.Output}");
        Assert.Equal((ushort)0, result.Status);
    }

    [Fact]
    public async Task Echo_succeeds_repeatedly_on_fresh_connections()
    {
        var (storescp, port) = await DcmtkProcess.StartStorescpAsync("STORESCP");
        await using var _ = storescp;

        for (var i = 0; i < 5; i++)
        {
            var result = await DicomEchoClient.EchoAsync(new IPEndPoint(IPAddress.Loopback, port), "STORESCP", "IMAGINGPROXY", s_echoOptions, CancellationToken.None);
            Assert.True(result.IsSuccess, result.ToString());
        }
    }

    // storescp 3.6.7 does not check the called AE title (echoscu -aec ANY succeeds against -aet STORESCP), so a real
    // reject comes from --refuse: A-ASSOCIATE-RJ rejected-permanent, service-user, no-reason-given.
    [Fact]
    public async Task Echo_is_rejected_when_storescp_refuses_the_association()
    {
        var (storescp, port) = await DcmtkProcess.StartStorescpAsync("STORESCP", "--refuse");
        await using var _ = storescp;

        var result = await DicomEchoClient.EchoAsync(new IPEndPoint(IPAddress.Loopback, port), "WRONG-AE", "IMAGINGPROXY", s_echoOptions, CancellationToken.None);

        Assert.Equal(EchoOutcome.Rejected, result.Outcome);
        Assert.Equal(AssociateRejectResult.RejectedPermanent, result.RejectResult);
        Assert.Equal(AssociateRejectSource.ServiceUser, result.RejectSource);
        Assert.Equal(AssociateRejectReasons.ServiceUserNoReasonGiven, result.RejectReason);
    }

    [Fact]
    public async Task Echo_to_a_closed_port_is_a_connection_failure()
    {
        var port = DcmtkProcess.FreePort();

        var result = await DicomEchoClient.EchoAsync(new IPEndPoint(IPAddress.Loopback, port), "STORESCP", "IMAGINGPROXY", s_echoOptions, CancellationToken.None);

        Assert.Equal(EchoOutcome.ConnectionFailed, result.Outcome);
        Assert.Contains("ConnectionRefused", result.Detail, StringComparison.Ordinal);
    }
}
