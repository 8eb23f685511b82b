using System.Net.Sockets;
using ImagingProxy.Mllp;
using ImagingProxy.Testing;

namespace ImagingProxy.Tests.Mllp;

/// <summary>The pool's count of a node's connections (rented, being opened, reserved): what destination MaxConcurrent reads.</summary>
public sealed class MllpNodePoolTests
{
    private static readonly TimeSpan s_connectTimeout = TimeSpan.FromSeconds(5);

    [Fact]
    public async Task A_reservation_holds_the_place_until_the_rent_takes_it_over_and_is_counted_once()
    {
        await using var node = new FakeHl7Node();
        await using var pool = new MllpNodePool(TimeProvider.System);

        Assert.True(pool.TryReserve(node.Address, 1));
        Assert.False(pool.TryReserve(node.Address, 1)); // the last place is taken
        Assert.Equal(1, pool.LoadOf(node.Address));

        var connection = await pool.RentAsync(node.Address, 1 << 20, s_connectTimeout, tls: null, tlsSettings: null, CancellationToken.None, reserved: true);
        Assert.Equal(1, pool.LoadOf(node.Address)); // the rent took the reservation over
        Assert.Equal(1, pool.RentedCount(node.Address));

        // Back to the pool, then rented again from it with a reservation: still counted once.
        await pool.ReturnAsync(connection, TimeSpan.FromMinutes(1));
        Assert.Equal(0, pool.LoadOf(node.Address));
        Assert.True(pool.TryReserve(node.Address, 1));
        var again = await pool.RentAsync(node.Address, 1 << 20, s_connectTimeout, tls: null, tlsSettings: null, CancellationToken.None, reserved: true);
        Assert.Same(connection, again);
        Assert.Equal(1, pool.LoadOf(node.Address));
        await pool.DiscardAsync(again);
        Assert.Equal(0, pool.LoadOf(node.Address));
    }

    [Fact]
    public async Task A_reservation_whose_connect_fails_or_that_is_given_back_frees_the_place()
    {
        using var closed = new ClosedPort();
        var address = $"tcp://127.0.0.1:{closed.Port}";
        await using var pool = new MllpNodePool(TimeProvider.System);

        Assert.True(pool.TryReserve(address, 1));
        await Assert.ThrowsAsync<SocketException>(() => pool.RentAsync(address, 1 << 20, s_connectTimeout, tls: null, tlsSettings: null, CancellationToken.None, reserved: true).AsTask());
        Assert.Equal(0, pool.LoadOf(address));

        Assert.True(pool.TryReserve(address, 1));
        pool.Unreserve(address);
        Assert.Equal(0, pool.LoadOf(address));
    }
}
