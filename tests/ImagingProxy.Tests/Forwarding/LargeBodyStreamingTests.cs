using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using ImagingProxy.Testing;

namespace ImagingProxy.Tests.Forwarding;

/// <summary>
/// A 2 GB WADO-RS-like download and a 2 GB STOW-RS-like upload through the real host process (out of process, so
/// its memory can be measured alone): bodies stream, the proxy's resident memory grows by less than 100 MB.
/// </summary>
public sealed class LargeBodyStreamingTests : IAsyncLifetime
{
    private const long Size = 2L * 1024 * 1024 * 1024;
    private const long AllowedGrowth = 100L * 1024 * 1024;
    private readonly TestCertificate _certificate = new();
    private TestBackend _backend = null!;

    public async Task InitializeAsync() => _backend = await TestBackend.StartAsync("pacs1");

    public async Task DisposeAsync()
    {
        await _backend.DisposeAsync();
        _certificate.Dispose();
    }

    [Fact]
    public async Task Two_gigabytes_stream_both_ways_with_flat_proxy_memory()
    {
        var config = TestConfig.Build(_certificate, $$"""{ "web": {{TestConfig.Cluster("", _backend)}} }""",
            """{ "all": { "ClusterId": "web", "Match": { "Path": "/{**rest}" }, "MaxRequestBodySize": -1 } }""");
        var configPath = Path.Combine(_certificate.Directory, "proxy.json");
        await File.WriteAllTextAsync(configPath, config);

        using var host = HostProcess.Start(["--config", configPath]);
        using var client = new HttpClient(_certificate.TrustingHandler()) { BaseAddress = new Uri($"https://127.0.0.1:{await host.PortAsync("Viewers")}/"), Timeout = TimeSpan.FromMinutes(5) };
        using (var warm = await client.GetAsync("/big?bytes=10000000"))
        {
            Assert.Equal(10_000_000, (await warm.Content.ReadAsByteArrayAsync()).Length);
        }

        var baseline = host.ResidentBytes();
        using var sampling = new CancellationTokenSource();
        var peak = Task.Run(async () =>
        {
            long max = 0;
            while (!sampling.IsCancellationRequested)
            {
                max = Math.Max(max, host.ResidentBytes());
                await Task.Delay(50, CancellationToken.None);
            }

            return max;
        });

        // Download: WADO-RS-like, read and verified as it streams.
        using (var response = await client.GetAsync($"/big?bytes={Size}", HttpCompletionOption.ResponseHeadersRead))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await using var body = await response.Content.ReadAsStreamAsync();
            Assert.Equal(Size, await VerifyPatternAsync(body));
        }

        // Upload: STOW-RS-like, generated as it streams; the backend reports length and SHA-256.
        using (var content = new StreamContent(new PatternStream(Size), 256 * 1024))
        {
            content.Headers.ContentLength = Size;
            content.Headers.TryAddWithoutValidation("Content-Type", "multipart/related; type=\"application/dicom\"; boundary=x");
            using var response = await client.PostAsync("/studies", content);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var parts = (await response.Content.ReadAsStringAsync()).Split(' ');
            Assert.Equal(Size.ToString(CultureInfo.InvariantCulture), parts[3]);
            Assert.Equal(PatternSha256(Size), parts[4]);
        }

        await sampling.CancelAsync();
        var growth = await peak - baseline;
        Console.WriteLine($"proxy RSS baseline {baseline / (1024 * 1024)} MB, peak growth {growth / (1024 * 1024)} MB");
        Assert.True(growth < AllowedGrowth, $"proxy memory grew by {growth / (1024 * 1024)} MB (baseline {baseline / (1024 * 1024)} MB)");
    }

    private static readonly byte[] s_block = CreateBlock();

    private static byte[] CreateBlock()
    {
        var block = new byte[251 * 256];
        for (var i = 0; i < block.Length; i++)
        {
            block[i] = (byte)(i % 251);
        }

        return block;
    }

    private static async Task<long> VerifyPatternAsync(Stream body)
    {
        var buffer = new byte[256 * 1024];
        long position = 0;
        int read;
        while ((read = await body.ReadAsync(buffer)) > 0)
        {
            for (var offset = 0; offset < read;)
            {
                var inBlock = (int)(position % s_block.Length);
                var count = Math.Min(read - offset, s_block.Length - inBlock);
                Assert.True(buffer.AsSpan(offset, count).SequenceEqual(s_block.AsSpan(inBlock, count)), $"byte mismatch near {position}");
                offset += count;
                position += count;
            }
        }

        return position;
    }

    private static string PatternSha256(long size)
    {
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        for (long written = 0; written < size;)
        {
            var count = (int)Math.Min(s_block.Length, size - written);
            hash.AppendData(s_block, 0, count);
            written += count;
        }

        return Convert.ToHexString(hash.GetHashAndReset());
    }

    /// <summary>A read-only stream of the test pattern, generated on demand.</summary>
    private sealed class PatternStream(long length) : Stream
    {
        private long _position;

        public override bool CanRead => true;

        public override bool CanSeek => false;

        public override bool CanWrite => false;

        public override long Length => length;

        public override long Position { get => _position; set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

        public override int Read(Span<byte> buffer)
        {
            var total = (int)Math.Min(buffer.Length, length - _position);
            for (var done = 0; done < total;)
            {
                var inBlock = (int)(_position % s_block.Length);
                var count = Math.Min(total - done, s_block.Length - inBlock);
                s_block.AsSpan(inBlock, count).CopyTo(buffer[done..]);
                done += count;
                _position += count;
            }

            return total;
        }

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));

        public override void Flush()
        {
        }

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    }
}
