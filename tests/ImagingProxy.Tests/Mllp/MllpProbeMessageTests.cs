using System.Text;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

public sealed class MllpProbeMessageTests
{
    [Theory]
    [InlineData("MSH|^~\\&|IP|PROBE|RIS|HOSP|20250101120000||ADT^A08|PROBE0001|T|2.5.1\rEVN|A08", "MSH|^~\\&|IP|PROBE|RIS|HOSP|20250101120000||ADT^A08|NEW|T|2.5.1\rEVN|A08")]
    [InlineData("MSH#$%^*#IP#PROBE#RIS#HOSP#20250101120000##ADT$A08#PROBE0001#T#2.5", "MSH#$%^*#IP#PROBE#RIS#HOSP#20250101120000##ADT$A08#NEW#T#2.5")]
    [InlineData("MSH|^~\\&|IP|PROBE|RIS|HOSP|20250101120000||ADT^A08|PROBE0001", "MSH|^~\\&|IP|PROBE|RIS|HOSP|20250101120000||ADT^A08|NEW")]
    [InlineData("MSH|^~\\&|IP|PROBE|RIS|HOSP|20250101120000||ADT^A08|PROBE0001\rEVN|A08|X|Y|Z|1|2|3|4|5", "MSH|^~\\&|IP|PROBE|RIS|HOSP|20250101120000||ADT^A08|NEW\rEVN|A08|X|Y|Z|1|2|3|4|5")]
    public void Each_probe_replaces_msh_10_and_nothing_else(string configured, string sent)
        => Assert.Equal(sent, Encoding.ASCII.GetString(MllpProber.WithControlId(Encoding.ASCII.GetBytes(configured), "NEW"u8.ToArray())));

    [Fact]
    public void Probe_control_ids_are_distinct_and_fit_msh_10()
    {
        var first = Encoding.ASCII.GetString(MllpProber.NextControlId());
        var second = Encoding.ASCII.GetString(MllpProber.NextControlId());

        Assert.NotEqual(first, second);
        Assert.Equal(17, first.Length); // within MSH-10's 20 characters (HL7 v2.3-v2.5)
        Assert.StartsWith("P", first, StringComparison.Ordinal);
    }
}
