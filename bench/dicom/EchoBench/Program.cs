using System.Diagnostics;
using System.Globalization;
using System.Net;
using ImagingProxy.Dicom;

// usage: EchoBench HOST PORT CALLED_AE COUNT [CONCURRENCY]
// Runs COUNT whole C-ECHO associations (RQ, AC, C-ECHO-RQ/RSP, release) spread over CONCURRENCY loops and prints
// "associations_per_second median_ms p90_ms" (one line, invariant culture) for run.sh.
if (args.Length < 4)
{
    Console.Error.WriteLine("usage: EchoBench HOST PORT CALLED_AE COUNT [CONCURRENCY]");
    return 2;
}

var endPoint = new IPEndPoint(IPAddress.Parse(args[0]), int.Parse(args[1], CultureInfo.InvariantCulture));
var called = args[2];
var count = int.Parse(args[3], CultureInfo.InvariantCulture);
var concurrency = args.Length > 4 ? int.Parse(args[4], CultureInfo.InvariantCulture) : 1;
var options = new DicomEchoOptions { Timeout = TimeSpan.FromSeconds(10) };

// Warm-up: JIT, connection paths, the proxy's first-association costs.
for (var i = 0; i < 50; i++)
{
    var warm = await DicomEchoClient.EchoAsync(endPoint, called, "ECHOBENCH", options, CancellationToken.None);
    if (!warm.IsSuccess)
    {
        Console.Error.WriteLine($"warm-up echo failed: {warm}");
        return 1;
    }
}

var latencies = new double[count];
var next = -1;
var failures = 0;
var total = Stopwatch.StartNew();
await Task.WhenAll(Enumerable.Range(0, concurrency).Select(_ => Task.Run(async () =>
{
    int i;
    while ((i = Interlocked.Increment(ref next)) < count)
    {
        var started = Stopwatch.GetTimestamp();
        var result = await DicomEchoClient.EchoAsync(endPoint, called, "ECHOBENCH", options, CancellationToken.None);
        latencies[i] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
        if (!result.IsSuccess)
        {
            Interlocked.Increment(ref failures);
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
Console.WriteLine(string.Create(
    CultureInfo.InvariantCulture,
    $"{count / total.Elapsed.TotalSeconds:F1} {latencies[count / 2]:F3} {latencies[(int)(count * 0.9)]:F3}"));
return 0;
