using ImagingProxy.Dicom;

namespace ImagingProxy.Tests.Dicom;

public class DimseCommandTests
{
    [Fact]
    public void Writes_the_dcmtk_echo_request_command_byte_for_byte()
    {
        var command = new byte[DimseCommandWriter.EchoRequestLength];

        Assert.Equal(68, DimseCommandWriter.WriteEchoRequest(command, 1));
        Assert.Equal(DicomCaptures.EchoRequestCommand, command);
    }

    [Fact]
    public void Writes_the_dcmtk_echo_response_command_byte_for_byte()
    {
        var command = new byte[DimseCommandWriter.EchoResponseLength];

        Assert.Equal(78, DimseCommandWriter.WriteEchoResponse(command, 1, CommandElement.StatusSuccess));
        Assert.Equal(DicomCaptures.EchoResponseCommand, command);
    }

    [Fact]
    public void Reads_the_dcmtk_echo_response()
    {
        Assert.True(DimseCommandReader.TryRead(DicomCaptures.EchoResponseCommand, out var command));

        Assert.Equal(DimseCommandField.CEchoResponse, command.CommandField);
        Assert.Equal((ushort)1, command.MessageIdBeingRespondedTo);
        Assert.Null(command.MessageId);
        Assert.Equal((ushort)0x0101, command.CommandDataSetType);
        Assert.False(command.HasDataSet);
        Assert.True(command.IsResponse);
        Assert.Equal((ushort)0, command.Status);
        Assert.Equal(DicomUids.Verification, command.GetAffectedSopClassUid());
    }

    [Fact]
    public void Reads_the_dcmtk_echo_request()
    {
        Assert.True(DimseCommandReader.TryRead(DicomCaptures.EchoRequestCommand, out var command));

        Assert.Equal(DimseCommandField.CEchoRequest, command.CommandField);
        Assert.Equal((ushort)1, command.MessageId);
        Assert.Null(command.Status);
        Assert.False(command.IsResponse);
    }

    [Fact]
    public void Refuses_an_element_running_past_the_end()
        => Assert.False(DimseCommandReader.TryRead(DicomCaptures.EchoRequestCommand.AsSpan(0, 67), out _));

    [Fact]
    public void Refuses_a_command_without_command_field()
        => Assert.False(DimseCommandReader.TryRead(DicomCaptures.EchoRequestCommand.AsSpan(0, 12), out _));

    [Fact]
    public void Refuses_elements_outside_group_0000()
    {
        var command = DicomCaptures.EchoRequestCommand;
        command[12] = 0x08;

        Assert.False(DimseCommandReader.TryRead(command, out _));
    }

    [Fact]
    public void Refuses_an_undefined_length()
    {
        var command = DicomCaptures.EchoRequestCommand;
        command.AsSpan(16, 4).Fill(0xFF);

        Assert.False(DimseCommandReader.TryRead(command, out _));
    }

    [Fact]
    public void Gives_every_response_command_field_bit_15_over_its_request()
    {
        var fields = Enum.GetValues<DimseCommandField>();
        foreach (var request in fields.Where(f => ((ushort)f & 0x8000) == 0 && f != DimseCommandField.CCancelRequest))
        {
            Assert.Contains((DimseCommandField)((ushort)request | 0x8000), fields);
        }

        Assert.Equal(0x0FFF, (int)DimseCommandField.CCancelRequest);
        Assert.Equal(0x8001, (int)DimseCommandField.CStoreResponse);
    }
}
