using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using ImagingProxy.Dicom;

// usage: EchoBench HOST PORT CALLED_AE COUNT [CONCURRENCY] [PAUSE_MS]
// Runs COUNT whole C-ECHO associations (connect, RQ, AC, C-ECHO-RQ/RSP, release, close) spread over CONCURRENCY loops
// and prints "associations_per_second median_ms p90_ms setup_median_ms associations" (one line, invariant culture) for
// run.sh; the last field counts the warm-up associations too (what a proxy's CPU time over the whole run is divided by).
// Set-up is the association's establishment alone: from the start of the TCP connect to the first byte of the
// A-ASSOCIATE-AC (or RJ) read back. PAUSE_MS (default 0) waits that long after each association in each loop: paced
// associations, each set up on its own, as a modality opens them, rather than back to back.
if (args.Length < 4)
{
    Console.Error.WriteLine("usage: EchoBench HOST PORT CALLED_AE COUNT [CONCURRENCY] [PAUSE_MS]");
    return 2;
}

// A lean load generator: it shares the machine's cores with the proxy under test (and storescp), so socket completions
// run inline and idle thread-pool workers do not spin (EchoBench.csproj), as in bench/mllp/LoadClient.
Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
var endPoint = new IPEndPoint(IPAddress.Parse(args[0]), int.Parse(args[1], CultureInfo.InvariantCulture));
var called = args[2];
var count = int.Parse(args[3], CultureInfo.InvariantCulture);
var concurrency = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 1;
var pause = TimeSpan.FromMilliseconds(args.Length > 5 ? int.Parse(args[5], CultureInfo.InvariantCulture) : 0);
var options = new DicomEchoOptions { Timeout = TimeSpan.FromSeconds(10) };

// Warm-up: JIT, connection paths, the proxy's first-association costs.
const int WarmUp = 50;
for (var i = 0; i < WarmUp; i++)
{
    var warm = await DicomEchoClient.EchoAsync(endPoint, called, "ECHOBENCH", options, CancellationToken.None);
    if (!warm.IsSuccess)
    {
        Console.Error.WriteLine($"warm-up echo failed: {warm}");
        return 1;
    }
}

var latencies = new double[count];
var setups = new double[count];
var next = -1;
var failures = 0;
var total = Stopwatch.StartNew();
await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
{
    int i;
    while ((i = Interlocked.Increment(ref next)) < count)
    {
        var started = Stopwatch.GetTimestamp();
        var (result, answered) = await TimedEchoAsync(endPoint, called, options);
        latencies[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        setups[i] = Stopwatch.GetElapsedTime(started, answered).TotalMilliseconds;
        if (!result.IsSuccess)
        {
            Interlocked.Increment(ref failures);
        }

        if (pause > TimeSpan.Zero)
        {
            await Task.Delay(pause);
        }
    }
})));
total.Stop();
if (failures > 0)
{
    Console.Error.WriteLine($"{failures} of {count} echoes failed");
    return 1;
}

Array.Sort(latencies);
Array.Sort(setups);
Console.WriteLine(string.Create(
    CultureInfo.InvariantCulture,
    $"{count / total.Elapsed.TotalSeconds:F1} {latencies[count / 2]:F3} {latencies[(int)(count * 0.9)]:F3} {setups[count / 2]:F3} {count + WarmUp}"));
return 0;

// The same exchange as DicomEchoClient.EchoAsync(endPoint, ...), over a connection of our own so that the arrival of
// the association answer can be time-stamped. Returns that timestamp (Stopwatch ticks; 0 if nothing came back).
static async Task<(EchoResult Result, long Answered)> TimedEchoAsync(IPEndPoint endPoint, string called, DicomEchoOptions options)
{
    using var socket = new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
    await socket.ConnectAsync(endPoint);
    await using var stream = new NetworkStream(socket, ownsSocket: true);
    var input = new FirstReadClock(PipeReader.Create(stream, new StreamPipeReaderOptions(leaveOpen: true)));
    var output = PipeWriter.Create(stream, new StreamPipeWriterOptions(leaveOpen: true));
    var result = await DicomEchoClient.EchoAsync(new Duplex(input, output), called, "ECHOBENCH", options, CancellationToken.None);
    await input.CompleteAsync();
    await output.CompleteAsync();
    return (result, input.FirstData);
}

sealed class Duplex(PipeReader input, PipeWriter output) : IDuplexPipe
{
    public PipeReader Input { get; } = input;

    public PipeWriter Output { get; } = output;
}

// Notes when the first read returns data; everything else goes straight to the wrapped reader.
sealed class FirstReadClock(PipeReader inner) : PipeReader
{
    public long FirstData { get; private set; }

    public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
    {
        var result = await inner.ReadAsync(cancellationToken);
        if (FirstData == 0 && !result.Buffer.IsEmpty)
        {
            FirstData = Stopwatch.GetTimestamp();
        }

        return result;
    }

    public override bool TryRead(out ReadResult result) => inner.TryRead(out result);

    public override void AdvanceTo(SequencePosition consumed) => inner.AdvanceTo(consumed);

    public override void AdvanceTo(SequencePosition consumed, SequencePosition examined) => inner.AdvanceTo(consumed, examined);

    public override void CancelPendingRead() => inner.CancelPendingRead();

    public override void Complete(Exception? exception = null) => inner.Complete(exception);
}
