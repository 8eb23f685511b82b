using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.PeersTests;

// Real peers: dcmtk dcmqrscp (archive) with storescu, findscu, movescu and storescp as the move destination.
public sealed class DcmQrScpTests
{
    [Fact(Timeout = 60_000)]
    public async Task Dcmqrscp_stores_finds_and_moves_a_study_to_storescp()
    {
        using var files = TestDicomFiles.Create();
        var sent = await files.CreateSeriesAsync(2);
        var study = sent[0].StudyInstanceUid;
        await using var destination = await Dcmtk.StartStoreScpAsync(new StoreScpOptions { AeTitle = "DEST" });
        await using var archive = await Dcmtk.StartDcmQrScpAsync(new DcmQrScpOptions { MoveDestinations = [destination.Node] });

        var store = await Dcmtk.StoreAsync(archive.Port, archive.AeTitle, sent.Select(f => f.Path));
        var find = await Dcmtk.FindAsync(
            archive.Port,
            archive.AeTitle,
            ["QueryRetrieveLevel=STUDY", "StudyInstanceUID", "PatientID"],
            new ScuOptions { ExtraArguments = ["-v"] });
        var move = await Dcmtk.MoveAsync(archive.Port, archive.AeTitle, destination.AeTitle, ["QueryRetrieveLevel=STUDY", $"StudyInstanceUID={study}"]);

        Assert.True(store.Succeeded, $"{store}\n--- dcmqrscp ---\n{archive.Process.Output}");
        Assert.True(find.Succeeded, find.ToString());
        Assert.Contains(study, find.Output, StringComparison.Ordinal);
        Assert.True(move.Succeeded, $"{move}\n--- dcmqrscp ---\n{archive.Process.Output}");
        Assert.Equal(2, destination.ReceivedFiles().Count);
    }
}
