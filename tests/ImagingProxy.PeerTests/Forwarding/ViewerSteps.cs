using System.Net;
using System.Threading.Channels;
using ImagingProxy.Health;
using Microsoft.Extensions.DependencyInjection;

namespace ImagingProxy.PeerTests.Forwarding;

/// <summary>Steps the nginx load-balancing tests share: viewer GETs one at a time, and waiting for a health change.</summary>
internal static class ViewerSteps
{
    /// <summary>GETs <c>/studies</c> <paramref name="count"/> times, one at a time: each answer's body (all must be 200).</summary>
    public static async Task<List<string>> GetAsync(HttpClient client, int count)
    {
        var served = new List<string>();
        for (var i = 0; i < count; i++)
        {
            using var response = await client.GetAsync("/studies");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            served.Add(await response.Content.ReadAsStringAsync());
        }

        return served;
    }

    /// <summary>The new active health states of <paramref name="destination"/> from now on, as the proxy's tracker sees them.</summary>
    public static ChannelReader<string> ActiveTransitions(ImagingProxy.Testing.TestProxy proxy, string destination)
    {
        var transitions = Channel.CreateUnbounded<string>();
        proxy.Services.GetRequiredService<DestinationHealthTracker>().Transition += (_, changed, kind, _, now) =>
        {
            if (changed == destination && kind == "active")
            {
                transitions.Writer.TryWrite(now.ToString());
            }
        };
        return transitions.Reader;
    }

    /// <summary>
    /// Reads <paramref name="transitions"/> (one destination's new health states) until <paramref name="health"/>, for at
    /// most 20 s (a first probe makes a destination Healthy before anything else).
    /// </summary>
    public static async Task TransitionAsync(ChannelReader<string> transitions, string destination, string health)
    {
        using var deadline = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        try
        {
            while (await transitions.ReadAsync(deadline.Token) != health)
            {
            }
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            throw new Xunit.Sdk.XunitException($"{destination}'s active health did not become {health} within 20 s");
        }
    }
}
