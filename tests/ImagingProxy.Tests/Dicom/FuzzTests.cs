using System.Buffers;
using ImagingProxy.Dicom;

namespace ImagingProxy.Tests.Dicom;

/// <summary>Fixed-seed fuzzing: random, truncated, oversized and type-confused input never throws and always terminates.</summary>
public class FuzzTests
{
    internal const int Rounds = 2000;

    [Fact]
    public void Reader_and_parsers_never_throw_on_random_bytes()
    {
        var random = new Random(8);
        for (var round = 0; round < Rounds; round++)
        {
            var bytes = new byte[random.Next(0, 300)];
            random.NextBytes(bytes);
            if (bytes.Length > 0 && random.Next(2) == 0)
            {
                bytes[0] = (byte)random.Next(1, 8); // mostly known types, so lengths get exercised
            }

            ReadAll(bytes, random);
            ParseEverything(bytes);
        }
    }

    [Fact]
    public void Reader_and_parsers_never_throw_on_mutated_captures()
    {
        var random = new Random(42);
        var captures = DicomCaptures.Each().Select(c => c.Pdu).ToArray();
        for (var round = 0; round < Rounds; round++)
        {
            var bytes = captures[random.Next(captures.Length)].ToArray();
            var mutations = random.Next(1, 6);
            for (var m = 0; m < mutations; m++)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }

            // Truncate sometimes, or confuse the type with another PDU's.
            if (random.Next(4) == 0)
            {
                bytes = bytes[..random.Next(bytes.Length)];
            }
            else if (random.Next(4) == 0)
            {
                bytes[0] = (byte)random.Next(1, 8);
            }

            ReadAll(bytes, random);
            ParseEverything(bytes);
        }
    }

    [Fact]
    public void Type_confused_bodies_are_named_errors_not_exceptions()
    {
        Assert.False(AssociateAccept.TryParse(AssociateParserTests.Body(DicomCaptures.AssociateRequest), out _, out var acError));
        Assert.Equal(AssociateParseError.MissingPresentationContext, acError);
        Assert.False(AssociateRequest.TryParse(AssociateParserTests.Body(DicomCaptures.AssociateAccept), out _, out var rqError));
        Assert.Equal(AssociateParseError.MissingPresentationContext, rqError);
        Assert.False(AssociateRequest.TryParse(AssociateParserTests.Body(DicomCaptures.EchoRequestPData), out _, out var pdataError));
        Assert.Equal(AssociateParseError.ProtocolVersionNotSupported, pdataError);
        Assert.False(AssociateRequest.TryParse(AssociateParserTests.Body(DicomCaptures.ReleaseRequest), out _, out var releaseError));
        Assert.Equal(AssociateParseError.TooShort, releaseError);
    }

    [Fact]
    public void Observer_never_throws_and_reports_malformed_at_most_once()
    {
        var random = new Random(1234);
        var valid = DicomCaptures.All;
        for (var round = 0; round < Rounds / 4; round++)
        {
            var randomBytes = random.Next(3) == 0;
            var bytes = randomBytes ? new byte[random.Next(1, 600)] : valid.ToArray();
            if (randomBytes)
            {
                random.NextBytes(bytes);
            }

            for (var m = random.Next(0, 4); m > 0; m--)
            {
                bytes[random.Next(bytes.Length)] = (byte)random.Next(256);
            }

            var events = new RecordingObserverEvents();
            var observer = new DimseObserver(events, maxCommandLength: random.Next(8, 200));
            var position = 0;
            while (position < bytes.Length)
            {
                var count = Math.Min(random.Next(1, 64), bytes.Length - position);
                observer.Observe(bytes.AsSpan(position, count));
                position += count;
            }

            Assert.Equal(bytes.Length, observer.TotalBytes);
            Assert.True(events.Events.Count(e => e.StartsWith("malformed", StringComparison.Ordinal)) <= 1);
        }
    }

    private static void ReadAll(byte[] bytes, Random random)
    {
        var buffer = bytes.Length > 2 ? TestSequence.Split(bytes, random.Next(1, bytes.Length)) : new ReadOnlySequence<byte>(bytes);
        var limit = (uint)random.Next(0, 400);
        var iterations = 0;
        while (PduReader.TryReadPdu(ref buffer, limit, out var header, out var body) == PduReadResult.Complete)
        {
            Assert.True(++iterations <= bytes.Length / PduHeader.Size, "the reader must consume at least a header per PDU");
            Assert.Equal(header.Length, (uint)body.Length);
        }
    }

    private static void ParseEverything(byte[] bytes)
    {
        var body = bytes.Length > 6 ? new ReadOnlySequence<byte>(bytes, 6, bytes.Length - 6) : ReadOnlySequence<byte>.Empty;
        // Success or a named error (None only on success); never an exception.
        Assert.Equal(AssociateRequest.TryParse(body, out _, out var rqError), rqError == AssociateParseError.None);
        Assert.Equal(AssociateAccept.TryParse(body, out _, out var acError), acError == AssociateParseError.None);
        DimseCommandReader.TryRead(bytes, out _);
        if (bytes.Length > 12)
        {
            DimseCommandReader.TryRead(bytes.AsSpan(12), out _);
        }
    }
}
