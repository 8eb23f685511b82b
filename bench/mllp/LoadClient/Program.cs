using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

// MLLP load client: K connections, each sends one message and waits for its ACK (HL7 original mode), for D seconds
// after a 1 s warm-up. Prints one line: msgs_per_s p50_ms p99_ms errors messages, the last being every message
// acknowledged, warm-up included (what a proxy's CPU time over the whole run is divided by).
// A lean load generator. It shares the machine's cores with the proxy under test, so whatever CPU it burns is taken from
// that proxy. With the runtime's defaults (socket completions handed to the thread pool, idle workers spinning) it used
// 35 us per message direct and 60-70 us through a proxy: the slower the path, the longer its workers spun, which
// penalised the slower proxy beyond its own cost. Completions inline and no spinning (LoadClient.csproj): ~20 us per
// message on every path.
Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
var port = int.Parse(args[0], CultureInfo.InvariantCulture);
var connections = int.Parse(args[1], CultureInfo.InvariantCulture);
var seconds = double.Parse(args[2], CultureInfo.InvariantCulture);
var warmup = TimeSpan.FromSeconds(1);
var measure = TimeSpan.FromSeconds(seconds);
var start = Stopwatch.GetTimestamp();
var results = await Task.WhenAll(Enumerable.Range(0, connections).Select(c => Task.Run(() => RunAsync(c))));
var latencies = results.SelectMany(r => r.Latencies).Order().ToArray();
var errors = results.Sum(r => r.Errors);
var total = results.Sum(r => r.Total);
double Percentile(double p) => latencies.Length == 0 ? double.NaN : latencies[Math.Min(latencies.Length - 1, (int)(p * latencies.Length))];
Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"{latencies.Length / measure.TotalSeconds:0} {Percentile(0.50):0.000} {Percentile(0.99):0.000} {errors} {total}"));

async Task<(List<double> Latencies, int Errors, long Total)> RunAsync(int connection)
{
    var latencies = new List<double>(1 << 20);
    var errors = 0;
    using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
    await socket.ConnectAsync("127.0.0.1", port);
    var receive = new byte[64 * 1024];
    var frames = new List<byte[]>();
    for (var i = 0; i < 1000; i++)
    {
        frames.Add(Encoding.ASCII.GetBytes($"\vMSH|^~\\&|RIS|RAD|PACS|HOSP|20250101120000||ORM^O01^ORM_O01|C{connection}M{i:D6}|P|2.5.1\rPID|1||12345^^^HOSP^MR||DOE^JOHN\rORC|NW|ORD{i}\rOBR|1|ORD{i}||71020^CHEST XRAY 2 VIEWS^C4\r\u001c\r"));
    }

    var measureFrom = start + (long)(warmup.TotalSeconds * Stopwatch.Frequency);
    var measureTo = measureFrom + (long)(measure.TotalSeconds * Stopwatch.Frequency);
    var n = 0;
    for (; ; n++)
    {
        var sent = Stopwatch.GetTimestamp();
        if (sent >= measureTo)
        {
            break;
        }

        await socket.SendAsync(frames[n % frames.Count]);
        var filled = 0;
        while (true)
        {
            var read = await socket.ReceiveAsync(receive.AsMemory(filled));
            if (read == 0)
            {
                return (latencies, errors + 1, n);
            }

            filled += read;
            if (filled >= 2 && receive[filled - 2] == 0x1C && receive[filled - 1] == 0x0D)
            {
                break;
            }
        }

        var now = Stopwatch.GetTimestamp();
        if (receive.AsSpan(0, filled).IndexOf("MSA|AA|"u8) < 0)
        {
            errors++;
        }

        if (sent >= measureFrom)
        {
            latencies.Add((now - sent) * 1000.0 / Stopwatch.Frequency);
        }
    }

    return (latencies, errors, n);
}
