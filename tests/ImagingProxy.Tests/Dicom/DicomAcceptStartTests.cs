using System.Net;
using ImagingProxy.Dicom;
using ImagingProxy.Hosting;
using Microsoft.AspNetCore.Connections;

namespace ImagingProxy.Tests.Dicom;

public class DicomAcceptStartTests
{
    private static readonly TimeSpan s_bounded = TimeSpan.FromSeconds(10);

    [Fact]
    public async Task An_association_started_at_accept_is_served_before_Kestrel_dispatches_it_and_ends_once()
    {
        using var node = new LoopbackNode();
        await using var harness = new HandlerHarness(destinationPorts: node.Port);
        var ended = 0;
        harness.Handler.AssociationEnded += _ => Interlocked.Increment(ref ended);

        var (client, dispatch) = harness.AcceptAndStart(DicomCaptures.AssociateRequest, "dicom");

        // The node answered and the client has its AC while Kestrel has not called the handler yet.
        Assert.Equal(PduType.AssociateAccept, (await client.ReadPduAsync())!.Value.Header.Type);
        Assert.True(node.SawRequest);
        var kestrel = Task.Run(dispatch);
        await client.SendAsync(DicomCaptures.ReleaseRequest);
        Assert.Equal(PduType.ReleaseResponse, (await client.ReadPduAsync())!.Value.Header.Type);
        await client.Output.CompleteAsync();

        await kestrel.WaitAsync(s_bounded);
        var summary = await harness.Ended.Task.WaitAsync(s_bounded);
        Assert.Equal(DicomAssociationEndReason.Released, summary.Reason);
        Assert.Equal(1, ended);
        Assert.Equal([PduType.ReleaseRequest], await node.Closed.WaitAsync(s_bounded));
    }

    [Theory]
    [InlineData("0.0.0.0", 104, "127.0.0.1", 104, true)]
    [InlineData("0.0.0.0", 104, "10.1.2.3", 104, true)]
    [InlineData("::", 104, "::ffff:127.0.0.1", 104, true)]
    [InlineData("127.0.0.1", 104, "127.0.0.1", 104, true)]
    [InlineData("127.0.0.1", 104, "::ffff:127.0.0.1", 104, true)]
    [InlineData("127.0.0.1", 104, "127.0.0.2", 104, false)]
    [InlineData("0.0.0.0", 104, "127.0.0.1", 11112, false)]
    public void A_connection_belongs_to_the_listener_bound_to_its_local_port_and_address(string bound, int boundPort, string local, int localPort, bool expected)
        => Assert.Equal(expected, DicomAcceptStart.Accepts(new IPEndPoint(IPAddress.Parse(bound), boundPort), new IPEndPoint(IPAddress.Parse(local), localPort)));

    [Fact]
    public async Task The_transport_hook_sees_each_connection_before_Kestrel_gets_it()
    {
        var accepted = new DefaultConnectionContext("c1");
        var seen = new List<string>();
        var factory = new AcceptHookTransportFactory(new OneConnectionFactory(accepted, seen), connection => seen.Add("hook " + connection.ConnectionId));

        await using var listener = await factory.BindAsync(new IPEndPoint(IPAddress.Loopback, 104));
        var connection = await listener.AcceptAsync();
        seen.Add("kestrel " + connection!.ConnectionId);

        Assert.Equal(["accept", "hook c1", "kestrel c1"], seen);
        Assert.Null(await listener.AcceptAsync());
        Assert.Equal(3, seen.Count);
    }

    private sealed class OneConnectionFactory(ConnectionContext connection, List<string> seen) : IConnectionListenerFactory, IConnectionListener
    {
        private bool _given;

        public EndPoint EndPoint { get; private set; } = new IPEndPoint(IPAddress.None, 0);

        public ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
        {
            EndPoint = endpoint;
            return ValueTask.FromResult<IConnectionListener>(this);
        }

        public ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
        {
            if (_given)
            {
                return ValueTask.FromResult<ConnectionContext?>(null);
            }

            _given = true;
            seen.Add("accept");
            return ValueTask.FromResult<ConnectionContext?>(connection);
        }

        public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => ValueTask.CompletedTask;

        public ValueTask DisposeAsync() => ValueTask.CompletedTask;
    }
}
