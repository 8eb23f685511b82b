using System.Text;
using ImagingProxy.Mllp;

namespace ImagingProxy.Tests.Mllp;

public class Hl7PatternTests
{
    private static Hl7Header Header(string msh)
    {
        Assert.Equal(Hl7ReadStatus.Success, Hl7HeaderReader.TryRead(Encoding.UTF8.GetBytes(msh), 8192, out var header));
        return header;
    }

    private static readonly Hl7Header s_adtA01 = Header("MSH|^~\\&|ADT1|HOSP|LAB|HOSP|2025||ADT^A01^ADT_A01|1|P|2.5.1");
    private static readonly Hl7Header s_ormO01 = Header("MSH|^~\\&|RIS^1.2^ISO|RAD|PACS|HOSP|2025||ORM^O01|2|P|2.3");
    private static readonly Hl7Header s_oruCustom = Header("MSH*@~\\&*REP*RAD*EHR*HOSP*2025**ORU@R01@ORU_R01*3*P*2.4");

    [Theory]
    [InlineData("*", true, true, true)]
    [InlineData("ADT", true, false, false)]
    [InlineData("ADT^*", true, false, false)]
    [InlineData("ADT^A01", true, false, false)]
    [InlineData("ADT^A08", false, false, false)]
    [InlineData("ADT^A01^ADT_A01", true, false, false)]
    [InlineData("ADT^A01^ADT_A02", false, false, false)]
    [InlineData("ORM^O01", false, true, false)]
    [InlineData("ORM^O01^*", false, true, false)]
    [InlineData("ORM^O01^ORM_O01", false, false, false)]
    [InlineData("ORU^R01", false, false, true)]
    [InlineData("*^R01", false, false, true)]
    [InlineData("adt^*", false, false, false)]
    public void Matches_message_type_patterns_against_msh9_whatever_the_delimiters(string pattern, bool adt, bool orm, bool oru)
    {
        var p = Hl7Pattern.Parse(pattern);

        Assert.Equal(adt, p.Matches(s_adtA01));
        Assert.Equal(orm, p.Matches(s_ormO01));
        Assert.Equal(oru, p.Matches(s_oruCustom));
    }

    [Fact]
    public void Matches_the_first_component_of_applications_and_facilities_exactly_and_case_sensitively()
    {
        Assert.True(Hl7Pattern.Create(sendingApplication: "RIS").Matches(s_ormO01));
        Assert.True(Hl7Pattern.Create(sendingApplication: "RIS", sendingFacility: "RAD", receivingApplication: "PACS", receivingFacility: "HOSP").Matches(s_ormO01));
        Assert.False(Hl7Pattern.Create(sendingApplication: "ris").Matches(s_ormO01));
        Assert.False(Hl7Pattern.Create(sendingApplication: "RI").Matches(s_ormO01));
        Assert.False(Hl7Pattern.Create(receivingFacility: "OTHER").Matches(s_ormO01));
        Assert.True(Hl7Pattern.Create("ORM^*", "*", null, "PACS", "*").Matches(s_ormO01));
        Assert.False(Hl7Pattern.Create("ADT^*", receivingApplication: "PACS").Matches(s_ormO01));
        Assert.True(Hl7Pattern.Create(receivingApplication: "EHR").Matches(s_oruCustom));
    }

    [Fact]
    public void Matches_every_message_when_nothing_is_specified()
    {
        Assert.True(Hl7Pattern.Any.Matches(s_adtA01));
        Assert.True(Hl7Pattern.Any.Matches(default));
    }

    [Fact]
    public void Does_not_match_a_header_that_lacks_the_field()
    {
        Assert.False(Hl7Pattern.Parse("ADT").Matches(default));
        Assert.False(Hl7Pattern.Create(sendingApplication: "RIS").Matches(default));
    }

    [Theory]
    [InlineData("")]
    [InlineData("AD*")]
    [InlineData("ADT^^A01")]
    [InlineData("ADT^A01^ADT_A01^X")]
    [InlineData("ADT|A01")]
    public void Rejects_malformed_patterns_at_configuration_time(string pattern)
    {
        Assert.False(Hl7Pattern.TryParse(pattern, out _, out var error));
        Assert.Contains(pattern.Length == 0 ? "empty" : pattern, error, StringComparison.Ordinal);
        Assert.Throws<FormatException>(() => Hl7Pattern.Parse(pattern));
    }

    [Fact]
    public void Reports_every_problem_of_a_pattern_at_once()
    {
        Assert.False(Hl7Pattern.TryCreate("AD*", "R^IS", null, "", null, out _, out var error));

        Assert.Contains("AD*", error, StringComparison.Ordinal);
        Assert.Contains("MSH-3", error, StringComparison.Ordinal);
        Assert.Contains("MSH-5", error, StringComparison.Ordinal);
    }
}
