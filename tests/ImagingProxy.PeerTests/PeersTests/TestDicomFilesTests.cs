using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.PeersTests;

// Real peers: dcmtk dump2dcm (generator) and dcmdump (reads the result back).
public sealed class TestDicomFilesTests
{
    [Fact(Timeout = 60_000)]
    public async Task Generates_a_tens_of_megabytes_mammogram_that_dcmdump_reads()
    {
        using var files = TestDicomFiles.Create();

        var mg = await files.CreateAsync(TestDicomKind.Mg);
        var dump = await Dcmtk.RunAsync("dcmdump", ["-M", "-Un", mg.Path], TimeSpan.FromSeconds(30));

        Assert.True(dump.Succeeded, dump.ToString());
        Assert.Equal(TestDicomFiles.MgPixelDataBytes, mg.PixelDataBytes);
        Assert.True(mg.FileBytes > 20_000_000, $"{mg.FileBytes} bytes");
        Assert.Contains($"[{mg.SopInstanceUid}]", dump.Output, StringComparison.Ordinal);
        Assert.Contains(TestDicomFiles.DigitalMammographyForPresentation, dump.Output, StringComparison.Ordinal);
    }

    [Fact(Timeout = 60_000)]
    public async Task Rounds_a_requested_size_up_to_whole_rows_and_gives_each_file_its_own_uids()
    {
        using var files = TestDicomFiles.Create();

        var a = await files.CreateAsync(new TestDicomFileOptions { PixelDataBytes = 100_000 });
        var b = await files.CreateAsync(new TestDicomFileOptions { PixelDataBytes = 100_000 });

        Assert.Equal(512 * 98 * 2, a.PixelDataBytes);
        Assert.NotEqual(a.StudyInstanceUid, b.StudyInstanceUid);
        Assert.NotEqual(a.SopInstanceUid, b.SopInstanceUid);
        Assert.StartsWith("2.25.", a.SopInstanceUid, StringComparison.Ordinal);
        Assert.InRange(a.SopInstanceUid.Length, 6, 64);
    }
}
