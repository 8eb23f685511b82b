using ImagingProxy.PeerTests.Peers;

namespace ImagingProxy.PeerTests.PeersTests;

// Real peers: Orthanc with the DICOMweb plugin (Debian orthanc, orthanc-dicomweb) and dcmtk storescu.
public sealed class OrthancNodeTests
{
    [Fact(Timeout = 90_000)]
    public async Task Orthanc_accepts_a_c_store_from_storescu_and_qido_lists_the_study()
    {
        using var files = TestDicomFiles.Create();
        var file = await files.CreateAsync();
        await using var orthanc = await OrthancNode.StartAsync(new OrthancOptions { AeTitle = "PACS_T" });

        var store = await Dcmtk.StoreAsync(orthanc.DicomPort, orthanc.AeTitle, [file.Path]);
        var studies = await orthanc.GetJsonAsync("dicom-web/studies");

        Assert.True(store.Succeeded, $"{store}\n--- Orthanc ---\n{orthanc.Process.Output}");
        var uids = studies.EnumerateArray().Select(s => s.GetProperty("0020000D").GetProperty("Value")[0].GetString()).ToList();
        Assert.Equal([file.StudyInstanceUid], uids);
    }

    [Fact(Timeout = 90_000)]
    public async Task Orthanc_takes_an_instance_over_rest_and_echo_over_dicom()
    {
        using var files = TestDicomFiles.Create();
        var file = await files.CreateAsync();
        await using var orthanc = await OrthancNode.StartAsync();

        var id = await orthanc.UploadInstanceAsync(file.Path);
        var instance = await orthanc.GetJsonAsync($"instances/{id}/simplified-tags");
        var echo = await Dcmtk.EchoAsync(orthanc.DicomPort, orthanc.AeTitle);

        Assert.Equal(file.SopInstanceUid, instance.GetProperty("SOPInstanceUID").GetString());
        Assert.True(echo.Succeeded, echo.ToString());
    }

    [Fact(Timeout = 90_000)]
    public async Task A_killed_orthanc_refuses_new_associations()
    {
        await using var orthanc = await OrthancNode.StartAsync();

        await orthanc.KillAsync();
        var echo = await Dcmtk.EchoAsync(orthanc.DicomPort, orthanc.AeTitle);

        Assert.True(orthanc.Process.HasExited);
        Assert.NotEqual(0, echo.ExitCode);
    }
}
