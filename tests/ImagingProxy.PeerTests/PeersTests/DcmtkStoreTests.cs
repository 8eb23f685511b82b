using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.PeersTests;

// Real peers: dcmtk storescu -> dcmtk storescp (+B), files from dump2dcm.
public sealed class DcmtkStoreTests
{
    [Fact(Timeout = 60_000)]
    public async Task Storescu_sends_three_generated_files_whose_data_sets_storescp_writes_byte_identical()
    {
        using var files = TestDicomFiles.Create();
        var sent = await files.CreateSeriesAsync(3);
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "RECEIVER", MaxPdu = 131072 });

        var result = await Dcmtk.StoreAsync(scp.Port, scp.AeTitle, sent.Select(f => f.Path));

        Assert.True(result.Succeeded, $"{result}\n--- storescp ---\n{scp.Process.Output}");
        var received = scp.ReceivedFiles();
        Assert.Equal(3, received.Count);
        foreach (var file in sent)
        {
            var copy = Assert.Single(received, path => Path.GetFileName(path).EndsWith(file.SopInstanceUid, StringComparison.Ordinal));
            var original = await File.ReadAllBytesAsync(file.Path);
            var written = await File.ReadAllBytesAsync(copy);
            // storescp writes its own File Meta Information (PS3.10 §7.1); +B keeps the data set as it arrived.
            Assert.True(
                DicomPart10.DataSet(original).Span.SequenceEqual(DicomPart10.DataSet(written).Span),
                $"The data set of {copy} differs from that of {file.Path}");
        }
    }

    [Fact(Timeout = 60_000)]
    public async Task Forking_storescp_takes_two_associations_at_once()
    {
        using var files = TestDicomFiles.Create();
        var first = await files.CreateAsync();
        var second = await files.CreateAsync();
        await using var scp = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { Fork = true });

        var results = await Task.WhenAll(
            Dcmtk.StoreAsync(scp.Port, scp.AeTitle, [first.Path]),
            Dcmtk.StoreAsync(scp.Port, scp.AeTitle, [second.Path]));

        Assert.All(results, r => Assert.True(r.Succeeded, r.ToString()));
        Assert.Equal(2, scp.ReceivedFiles().Count);
    }
}
