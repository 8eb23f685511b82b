using System.Buffers.Binary;
using ImagingProxy.Dicom;

namespace ImagingProxy.Tests.Dicom;

public class DimseObserverTests
{
    private static readonly string[] s_echoAssociationEvents =
    [
        "pdu AssociateRequest 205",
        "pdu AssociateAccept 184",
        "pdu PDataTransfer 74",
        "command pc1 CEchoRequest status=- sop=1.2.840.10008.1.1",
        "pdu PDataTransfer 84",
        "command pc1 CEchoResponse status=0000 sop=1.2.840.10008.1.1",
        "pdu ReleaseRequest 4",
        "pdu ReleaseResponse 4",
    ];

    [Fact]
    public void Reports_every_pdu_and_command_of_the_dcmtk_echo_association()
    {
        var events = new RecordingObserverEvents();
        var observer = new DimseObserver(events);

        observer.Observe(DicomCaptures.All);

        Assert.Equal(s_echoAssociationEvents, events.Events);
        Assert.Equal(DicomCaptures.All.Length, observer.TotalBytes);
        Assert.Equal(6, observer.PduCount);
        Assert.Equal(2, observer.CommandCount);
        Assert.True(observer.IsAtPduBoundary);
    }

    [Fact]
    public void Reports_the_same_events_for_every_split_point_of_the_stream()
    {
        var all = DicomCaptures.All;
        for (var split = 1; split < all.Length; split++)
        {
            var events = new RecordingObserverEvents();
            var observer = new DimseObserver(events);

            observer.Observe(all.AsSpan(0, split));
            observer.Observe(all.AsSpan(split));

            Assert.Equal(s_echoAssociationEvents, events.Events);
        }
    }

    [Fact]
    public void Reports_the_same_events_when_fed_one_byte_at_a_time_or_as_a_multi_segment_sequence()
    {
        var all = DicomCaptures.All;
        var bytewise = new RecordingObserverEvents();
        var observer = new DimseObserver(bytewise);
        foreach (var b in all)
        {
            observer.Observe([b]);
        }

        var segmented = new RecordingObserverEvents();
        new DimseObserver(segmented).Observe(TestSequence.Split(all, 3, 100, 217, 401, 402, 500));

        Assert.Equal(s_echoAssociationEvents, bytewise.Events);
        Assert.Equal(s_echoAssociationEvents, segmented.Events);
    }

    [Fact]
    public void Reassembles_a_command_fragmented_over_pdvs_and_pdus()
    {
        var command = DicomCaptures.EchoResponseCommand;
        byte[] stream =
        [
            .. PData(Pdv(3, 0x01, command[..10]), Pdv(3, 0x01, command[10..40])),
            .. PData(Pdv(3, 0x01, command[40..41]), Pdv(3, 0x03, command[41..])),
        ];
        for (var split = 1; split < stream.Length; split++)
        {
            var events = new RecordingObserverEvents { RecordPdus = false };
            var observer = new DimseObserver(events);
            observer.Observe(stream.AsSpan(0, split));
            observer.Observe(stream.AsSpan(split));

            Assert.Equal(["command pc3 CEchoResponse status=0000 sop=1.2.840.10008.1.1"], events.Events);
        }
    }

    [Fact]
    public void Skips_data_set_pdvs_without_allocating()
    {
        var events = new RecordingObserverEvents { RecordPdus = false };
        var observer = new DimseObserver(events);
        var command = StoreRequestCommand();
        var dataPdu = PData(Pdv(101, 0x00, new byte[4086]));
        observer.Observe(PData(Pdv(101, 0x03, command)));
        observer.Observe(dataPdu);

        var before = GC.GetAllocatedBytesForCurrentThread();
        for (var i = 0; i < 1000; i++)
        {
            observer.Observe(dataPdu.AsSpan(0, 7));
            observer.Observe(dataPdu.AsSpan(7));
        }

        var allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        observer.Observe(PData(Pdv(101, 0x02, new byte[340])));

        Assert.Equal(0, allocated);
        Assert.Equal(["command pc101 CStoreRequest status=- sop=1.2.840.10008.5.1.4.1.1.7"], events.Events);
        Assert.Equal(1003, observer.PduCount);
    }

    [Fact]
    public void Counts_a_command_over_the_bound_as_unparsed_and_goes_on()
    {
        var events = new RecordingObserverEvents { RecordPdus = false };
        var observer = new DimseObserver(events, maxCommandLength: 70);

        observer.Observe([.. DicomCaptures.EchoResponsePData, .. DicomCaptures.EchoRequestPData[..20], .. DicomCaptures.EchoRequestPData[20..]]);

        Assert.Equal(["unparsed pc1 78", "command pc1 CEchoRequest status=- sop=1.2.840.10008.1.1"], events.Events);
        Assert.Equal(1, observer.UnparsedCommandCount);
        Assert.False(observer.IsMalformed);
    }

    [Fact]
    public void Counts_an_undecodable_command_as_unparsed()
    {
        var events = new RecordingObserverEvents { RecordPdus = false };
        var observer = new DimseObserver(events);

        observer.Observe(PData(Pdv(1, 0x03, [1, 2, 3])));

        Assert.Equal(["unparsed pc1 3"], events.Events);
    }

    [Fact]
    public void Reports_abort_and_reject_with_their_fields()
    {
        var events = new RecordingObserverEvents { RecordPdus = false };
        var observer = new DimseObserver(events);

        observer.Observe([.. DicomCaptures.RefuseReject, .. Convert.FromHexString("07000000000400000206")]);

        Assert.Equal(["reject RejectedPermanent ServiceUser 1", "abort ServiceProvider InvalidPduParameterValue"], events.Events);
    }

    public static TheoryData<string, string> Garbage => new()
    {
        { "0900000000040000000007000000000400000000", "malformed UnknownPduType" },
        { "05000000000500000000000700000000040000", "malformed InvalidFixedPduLength" },
        { "040000000004000000000000", "malformed InvalidPdvLength" },
        { "040000000008000000010103", "malformed InvalidPdvLength" },
        { "04000000000C0000000A010300", "malformed InvalidPdvLength" },
        { "04000000000C000000020101000000020301", "malformed PresentationContextMismatch" },
    };

    [Theory]
    [MemberData(nameof(Garbage))]
    public void Reports_malformed_framing_once_then_only_counts_bytes(string hex, string expected)
    {
        var events = new RecordingObserverEvents { RecordPdus = false };
        var observer = new DimseObserver(events);
        var bytes = Convert.FromHexString(hex);

        observer.Observe(bytes);
        observer.Observe(DicomCaptures.All);

        Assert.Equal([expected], events.Events);
        Assert.True(observer.IsMalformed);
        Assert.Equal(bytes.Length + DicomCaptures.All.Length, observer.TotalBytes);
    }

    internal static byte[] Pdv(byte contextId, byte control, byte[] fragment)
    {
        var pdv = new byte[6 + fragment.Length];
        BinaryPrimitives.WriteUInt32BigEndian(pdv, (uint)(2 + fragment.Length));
        pdv[4] = contextId;
        pdv[5] = control;
        fragment.CopyTo(pdv, 6);
        return pdv;
    }

    internal static byte[] PData(params byte[][] pdvs)
    {
        byte[] body = [.. pdvs.SelectMany(p => p)];
        var pdu = new byte[6 + body.Length];
        pdu[0] = 0x04;
        BinaryPrimitives.WriteUInt32BigEndian(pdu.AsSpan(2), (uint)body.Length);
        body.CopyTo(pdu, 6);
        return pdu;
    }

    // C-STORE-RQ command shape captured from storescu (protocols.md §2.3).
    private static byte[] StoreRequestCommand()
    {
        var elements = new List<byte>();
        Element(elements, 0x0002, [.. "1.2.840.10008.5.1.4.1.1.7"u8, 0x00]);
        Element(elements, 0x0100, [0x01, 0x00]);
        Element(elements, 0x0110, [0x01, 0x00]);
        Element(elements, 0x0700, [0x00, 0x00]);
        Element(elements, 0x0800, [0x01, 0x00]);
        Element(elements, 0x1000, [.. "1.2.3.4"u8, 0x00]);
        var command = new List<byte>();
        Element(command, 0x0000, BitConverter.GetBytes((uint)elements.Count));
        command.AddRange(elements);
        return [.. command];
    }

    private static void Element(List<byte> bytes, ushort element, byte[] value)
    {
        bytes.AddRange([0x00, 0x00, (byte)element, (byte)(element >> 8)]);
        bytes.AddRange(BitConverter.GetBytes((uint)value.Length));
        bytes.AddRange(value);
    }
}
