using ImagingProxy.Telemetry;

namespace ImagingProxy.Tests.Telemetry;

public sealed class TagValueLimiterTests
{
    [Fact]
    public void Allow_list_values_pass_and_everything_else_is_other()
    {
        var limiter = new TagValueLimiter(["ORM^O01", "ADT^A01"], max: 100);

        Assert.Equal("ORM^O01", limiter.Limit("ORM^O01"));
        Assert.Equal("ADT^A01", limiter.Limit("ADT^A01"));
        Assert.Equal(TagValueLimiter.Other, limiter.Limit("ORU^R01"));
        Assert.Equal(TagValueLimiter.Other, limiter.Limit("orm^o01"));
    }

    [Fact]
    public void Without_an_allow_list_the_first_max_values_pass_and_stay()
    {
        var limiter = new TagValueLimiter(null, max: 2);

        Assert.Equal("PACS1", limiter.Limit("PACS1"));
        Assert.Equal("PACS2", limiter.Limit("PACS2"));
        Assert.Equal(TagValueLimiter.Other, limiter.Limit("CT_ROOM_3"));
        Assert.Equal("PACS1", limiter.Limit("PACS1"));
        Assert.Equal(TagValueLimiter.Other, limiter.Limit("MR_ROOM_1"));
    }

    [Fact]
    public void An_empty_allow_list_means_the_cap()
    {
        var limiter = new TagValueLimiter([], max: 1);

        Assert.Equal("A", limiter.Limit("A"));
        Assert.Equal(TagValueLimiter.Other, limiter.Limit("B"));
    }

    [Fact]
    public void A_cap_of_zero_or_less_makes_everything_other()
    {
        Assert.Equal(TagValueLimiter.Other, new TagValueLimiter(null, 0).Limit("A"));
        Assert.Equal(TagValueLimiter.Other, new TagValueLimiter(null, -5).Limit("A"));
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    public void Missing_values_are_none(string? value)
    {
        Assert.Equal("none", new TagValueLimiter(null, 10).Limit(value));
        Assert.Equal("none", new TagValueLimiter(["A"], 10).Limit(value));
    }

    [Fact]
    public void Concurrent_first_sightings_never_exceed_the_cap()
    {
        for (var attempt = 0; attempt < 20; attempt++)
        {
            var limiter = new TagValueLimiter(null, max: 8);
            var passed = new System.Collections.Concurrent.ConcurrentDictionary<string, byte>();
            Parallel.For(0, 500, new ParallelOptions { MaxDegreeOfParallelism = 8 }, i =>
            {
                var label = limiter.Limit("AE" + (i % 64).ToString(System.Globalization.CultureInfo.InvariantCulture));
                if (label != TagValueLimiter.Other)
                {
                    passed.TryAdd(label, 0);
                }
            });

            Assert.Equal(8, passed.Count);
        }
    }
}
