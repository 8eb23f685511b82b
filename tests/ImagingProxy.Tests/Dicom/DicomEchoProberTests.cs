using System.Net;
using System.Net.Sockets;
using ImagingProxy.Configuration;
using ImagingProxy.Dicom;
using Microsoft.Extensions.Configuration;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;

namespace ImagingProxy.Tests.Dicom;

public sealed class DicomEchoProberTests
{
    [Fact]
    public async Task A_node_that_accepts_and_never_answers_fails_its_probe_as_a_timeout()
    {
        // Listening, never accepting: the kernel completes the connect, nothing ever answers the A-ASSOCIATE-RQ.
        using var hanging = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        hanging.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        hanging.Listen(4);
        var port = ((IPEndPoint)hanging.LocalEndPoint!).Port;
        var prober = new DicomEchoProber(new DicomProxySettings(new ConfigurationBuilder().Build()), new NodeTls(), TimeProvider.System);
        var destination = new DestinationState("hang", new DestinationModel(new DestinationConfig { Address = $"tcp://127.0.0.1:{port}" }));
        using var probeTimeout = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));

        var result = await prober.ProbeAsync(null!, destination, probeTimeout.Token).WaitAsync(TimeSpan.FromSeconds(20));

        Assert.False(result.Healthy);
        Assert.Equal("timeout: the C-ECHO association was not answered in time", result.Detail);
    }
}
