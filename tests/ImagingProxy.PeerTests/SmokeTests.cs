namespace ImagingProxy.PeerTests;

public class SmokeTests
{
    [Fact]
    public void Builds() => Assert.True(true);
}
