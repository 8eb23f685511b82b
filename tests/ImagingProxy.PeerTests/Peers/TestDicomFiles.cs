using System.Globalization;
using System.Text;

namespace ImagingProxy.PeerTests.Peers;

/// <summary>
/// Generates valid DICOM Part-10 files at run time with dcmtk's dump2dcm from tests/data/dicom/image.dump.in:
/// explicit VR little endian, 16-bit MONOCHROME2 pixel data of the requested size, fresh 2.25 UIDs.
/// The files live in a temp directory deleted on dispose.
/// </summary>
public sealed class TestDicomFiles : IDisposable
{
    public const int CtPixelDataBytes = 512 * 512 * 2;
    public const int MgPixelDataBytes = 2048 * 6656 * 2;
    public const string CtImageStorage = "1.2.840.10008.5.1.4.1.1.2";
    public const string DigitalMammographyForPresentation = "1.2.840.10008.5.1.4.1.1.1.2";

    private static readonly TimeSpan s_dump2dcmTimeout = TimeSpan.FromSeconds(60);
    private static readonly Lazy<string> s_template = new(() => File.ReadAllText(RepoPaths.TestData("dicom", "image.dump.in")));

    private readonly TempDirectory _directory;
    private int _counter;

    private TestDicomFiles(TempDirectory directory) => _directory = directory;

    public string Directory => _directory.Path;

    public static TestDicomFiles Create() => new(TempDirectory.Create("dicom-files-"));

    public Task<TestDicomFile> CreateAsync(TestDicomKind kind = TestDicomKind.Ct, CancellationToken cancellationToken = default) =>
        CreateAsync(new TestDicomFileOptions { Kind = kind }, cancellationToken);

    /// <summary>Count instances of one new series in one new study.</summary>
    public async Task<IReadOnlyList<TestDicomFile>> CreateSeriesAsync(int count, TestDicomKind kind = TestDicomKind.Ct, int? pixelDataBytes = null, CancellationToken cancellationToken = default)
    {
        var study = DicomUid.New();
        var series = DicomUid.New();
        var files = new List<TestDicomFile>(count);
        for (var i = 1; i <= count; i++)
        {
            files.Add(await CreateAsync(
                new TestDicomFileOptions
                {
                    Kind = kind,
                    PixelDataBytes = pixelDataBytes,
                    StudyInstanceUid = study,
                    SeriesInstanceUid = series,
                    InstanceNumber = i,
                },
                cancellationToken));
        }

        return files;
    }

    public async Task<TestDicomFile> CreateAsync(TestDicomFileOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(options);
        var (sopClass, modality, width) = options.Kind switch
        {
            TestDicomKind.Mg => (DigitalMammographyForPresentation, "MG", 2048),
            _ => (CtImageStorage, "CT", 512),
        };
        var requested = Math.Max(2, options.PixelDataBytes ?? (options.Kind == TestDicomKind.Mg ? MgPixelDataBytes : CtPixelDataBytes));
        var columns = Math.Min(width, (requested + 1) / 2);
        var rows = (requested + (2 * columns) - 1) / (2 * columns);
        if (rows > ushort.MaxValue)
        {
            throw new ArgumentOutOfRangeException(nameof(options), requested, "Too many rows for one frame.");
        }

        var pixelBytes = rows * columns * 2;
        var sop = options.SopInstanceUid ?? DicomUid.New();
        var study = options.StudyInstanceUid ?? DicomUid.New();
        var series = options.SeriesInstanceUid ?? DicomUid.New();
        var n = Interlocked.Increment(ref _counter);
        var stem = Path.Combine(Directory, $"{modality}{n:D4}");
        var pixelPath = stem + ".raw";
        var dumpPath = stem + ".dump";
        var dicomPath = stem + ".dcm";

        await WritePixelDataAsync(pixelPath, pixelBytes, cancellationToken);
        var dump = new StringBuilder(s_template.Value)
            .Replace("@SOP_CLASS_UID@", sopClass)
            .Replace("@SOP_INSTANCE_UID@", sop)
            .Replace("@STUDY_INSTANCE_UID@", study)
            .Replace("@SERIES_INSTANCE_UID@", series)
            .Replace("@STUDY_DATE@", DateTime.UtcNow.ToString("yyyyMMdd", CultureInfo.InvariantCulture))
            .Replace("@ACCESSION@", $"ACC{n:D6}")
            .Replace("@MODALITY@", modality)
            .Replace("@STUDY_DESCRIPTION@", $"Generated {modality}")
            .Replace("@PATIENT_NAME@", options.PatientName)
            .Replace("@PATIENT_ID@", options.PatientId)
            .Replace("@INSTANCE_NUMBER@", options.InstanceNumber.ToString(CultureInfo.InvariantCulture))
            .Replace("@ROWS@", rows.ToString(CultureInfo.InvariantCulture))
            .Replace("@COLUMNS@", columns.ToString(CultureInfo.InvariantCulture))
            .Replace("@PIXEL_FILE@", pixelPath)
            .ToString();
        await File.WriteAllTextAsync(dumpPath, dump, cancellationToken);
        try
        {
            var result = await Dcmtk.RunAsync("dump2dcm", [dumpPath, dicomPath], s_dump2dcmTimeout, cancellationToken);
            if (!result.Succeeded)
            {
                throw new InvalidOperationException($"dump2dcm could not build {dicomPath}: {result}");
            }
        }
        finally
        {
            File.Delete(pixelPath);
            File.Delete(dumpPath);
        }

        return new TestDicomFile(dicomPath, sopClass, sop, study, series, options.PatientId, pixelBytes);
    }

    public void Dispose() => _directory.Dispose();

    private static async Task WritePixelDataAsync(string path, int length, CancellationToken cancellationToken)
    {
        // Noise, so that nothing on the way can shrink it by compression; a new pattern for every file.
        var random = new Random(Random.Shared.Next());
        var chunk = new byte[Math.Min(length, 1 << 20)];
        await using var stream = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 16, useAsync: true);
        for (var written = 0; written < length; written += chunk.Length)
        {
            random.NextBytes(chunk);
            await stream.WriteAsync(chunk.AsMemory(0, Math.Min(chunk.Length, length - written)), cancellationToken);
        }
    }
}
