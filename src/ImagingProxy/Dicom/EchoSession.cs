using System.Buffers;
using System.IO.Pipelines;

namespace ImagingProxy.Dicom;

/// <summary>
/// The requestor side of one Verification association (PS3.8 §9.2 state machine, reduced to the happy path and its
/// named failures): each received PDU is handled synchronously and may queue a PDU on the output; a non-null result
/// ends the exchange. One instance per <see cref="DicomEchoClient"/> call.
/// </summary>
internal sealed class EchoSession(PipeWriter output, ushort messageId)
{
    internal const int MaxCommandLength = 1024;

    private readonly PipeWriter _output = output;
    private readonly ushort _messageId = messageId;
    private Step _step = Step.AwaitAssociateResponse;
    private EchoResult _final;
    private byte[]? _command;
    private int _commandLength;

    private enum Step
    {
        AwaitAssociateResponse,
        AwaitEchoResponse,
        AwaitReleaseResponse,
    }

    /// <summary>True when a PDU was queued on the output since the last call.</summary>
    public bool NeedsFlush { get; set; }

    public EchoResult ConnectionClosed() => new(EchoOutcome.ConnectionClosed, _step switch
    {
        Step.AwaitAssociateResponse => "connection closed awaiting A-ASSOCIATE-AC",
        Step.AwaitEchoResponse => "connection closed awaiting C-ECHO-RSP",
        _ => "connection closed awaiting A-RELEASE-RP",
    })
    { Status = _final.Status };

    /// <summary>The reader refused a PDU header (too large or unknown type): abort (PS3.8 §9.3.8) and stop.</summary>
    public EchoResult FramingError(PduReadResult status, PduHeader header)
    {
        if (status == PduReadResult.UnknownType)
        {
            return ProtocolError(AbortReason.UnrecognizedPdu, "unrecognized PDU type");
        }

        return ProtocolError(AbortReason.InvalidPduParameterValue, $"{header.Type} PDU-length {header.Length} over the limit");
    }

    public EchoResult? Handle(PduHeader header, ReadOnlySequence<byte> body)
    {
        if (header.Type == PduType.Abort)
        {
            return Aborted(body);
        }

        return _step switch
        {
            Step.AwaitAssociateResponse => OnAssociateResponse(header, body),
            Step.AwaitEchoResponse => OnEchoResponse(header, body),
            _ => header.Type == PduType.ReleaseResponse ? _final : Unexpected(header),
        };
    }

    private EchoResult? OnAssociateResponse(PduHeader header, ReadOnlySequence<byte> body)
    {
        if (header.Type == PduType.AssociateReject)
        {
            return Rejected(body);
        }

        if (header.Type != PduType.AssociateAccept)
        {
            return Unexpected(header);
        }

        if (!AssociateAccept.TryParse(body, out var accept, out var error))
        {
            return ProtocolError(AbortReason.InvalidPduParameterValue, $"A-ASSOCIATE-AC not parsed: {error}");
        }

        var context = accept.FindPresentationContext(DicomDefaults.EchoPresentationContextId);
        if (context is null || context.Result != PresentationContextResult.Acceptance)
        {
            return Release(new EchoResult(
                EchoOutcome.VerificationNotAccepted,
                $"Verification presentation context {(context is null ? "missing" : context.Result.ToString())}"));
        }

        if (context.TransferSyntaxes.Count != 1 || context.TransferSyntaxes[0] != DicomUids.ImplicitVrLittleEndian)
        {
            return ProtocolError(AbortReason.InvalidPduParameterValue, "A-ASSOCIATE-AC chose a transfer syntax that was not proposed");
        }

        // The 80-byte P-DATA-TF fits any Maximum Length a real peer can announce (dcmtk's minimum is 4096).
        Span<byte> command = stackalloc byte[DimseCommandWriter.EchoRequestLength];
        DimseCommandWriter.WriteEchoRequest(command, _messageId);
        PduWriter.WritePDataTransfer(_output, DicomDefaults.EchoPresentationContextId, MessageControlHeader.Command | MessageControlHeader.LastFragment, command);
        NeedsFlush = true;
        _step = Step.AwaitEchoResponse;
        return null;
    }

    private EchoResult? OnEchoResponse(PduHeader header, ReadOnlySequence<byte> body)
    {
        if (header.Type != PduType.PDataTransfer)
        {
            return Unexpected(header);
        }

        // PS3.8 §9.3.5: one or more PDV items, each item-length:u32 BE | pcid | MCH | fragment.
        var reader = new SequenceReader<byte>(body);
        while (!reader.End)
        {
            if (!reader.TryReadBigEndian(out int itemLength) || itemLength < 2 || itemLength > reader.Remaining
                || !reader.TryRead(out var contextId) || !reader.TryRead(out var control))
            {
                return ProtocolError(AbortReason.InvalidPduParameterValue, "malformed PDV item");
            }

            var fragment = reader.UnreadSequence.Slice(0, itemLength - 2);
            reader.Advance(itemLength - 2);
            var mch = (MessageControlHeader)control;
            if (contextId != DicomDefaults.EchoPresentationContextId || (mch & MessageControlHeader.Command) == 0)
            {
                return ProtocolError(AbortReason.UnexpectedPduParameter, "C-ECHO-RSP expected as a command on presentation context 1");
            }

            if (!AppendCommand(fragment))
            {
                return ProtocolError(AbortReason.InvalidPduParameterValue, "command set too long");
            }

            if ((mch & MessageControlHeader.LastFragment) != 0)
            {
                return OnEchoResponseCommand();
            }
        }

        return null;
    }

    private EchoResult? OnEchoResponseCommand()
    {
        var bytes = _command.AsSpan(0, _commandLength);
        _commandLength = 0;
        if (!DimseCommandReader.TryRead(bytes, out var command))
        {
            return ProtocolError(AbortReason.InvalidPduParameterValue, "C-ECHO-RSP command set not parsed");
        }

        if (command.CommandField != DimseCommandField.CEchoResponse || command.MessageIdBeingRespondedTo != _messageId || command.Status is not { } status)
        {
            return ProtocolError(AbortReason.UnexpectedPduParameter, $"expected C-ECHO-RSP to message {_messageId}, got {command.CommandField}");
        }

        return Release(status == CommandElement.StatusSuccess
            ? new EchoResult(EchoOutcome.Success, "C-ECHO success") { Status = status }
            : new EchoResult(EchoOutcome.BadStatus, $"C-ECHO-RSP status 0x{status:X4}") { Status = status });
    }

    private bool AppendCommand(ReadOnlySequence<byte> fragment)
    {
        if (_commandLength + fragment.Length > MaxCommandLength)
        {
            return false;
        }

        _command ??= new byte[MaxCommandLength];
        fragment.CopyTo(_command.AsSpan(_commandLength));
        _commandLength += (int)fragment.Length;
        return true;
    }

    // PS3.8 §9.3.6: the requestor releases; the outcome is decided, but only reported once the A-RELEASE-RP arrives.
    private EchoResult? Release(EchoResult final)
    {
        _final = final;
        PduWriter.WriteReleaseRequest(_output);
        NeedsFlush = true;
        _step = Step.AwaitReleaseResponse;
        return null;
    }

    private EchoResult Rejected(ReadOnlySequence<byte> body)
    {
        if (body.Length != 4)
        {
            return ProtocolError(AbortReason.InvalidPduParameterValue, "A-ASSOCIATE-RJ length is not 4");
        }

        Span<byte> rj = stackalloc byte[4];
        body.CopyTo(rj);
        var result = (AssociateRejectResult)rj[1];
        var source = (AssociateRejectSource)rj[2];
        return new EchoResult(EchoOutcome.Rejected, $"{result}, {source}, {AssociateRejectReasons.Describe(source, rj[3])}")
        {
            RejectResult = result,
            RejectSource = source,
            RejectReason = rj[3],
        };
    }

    private EchoResult Aborted(ReadOnlySequence<byte> body)
    {
        Span<byte> abort = stackalloc byte[4];
        if (body.Length == 4)
        {
            body.CopyTo(abort);
        }

        var source = (AbortSource)abort[2];
        var reason = (AbortReason)abort[3];
        return new EchoResult(EchoOutcome.Aborted, $"A-ABORT {source}, {reason}") { AbortSource = source, AbortReason = reason, Status = _final.Status };
    }

    private EchoResult Unexpected(PduHeader header)
        => ProtocolError(AbortReason.UnexpectedPdu, $"unexpected {header.Type} in {_step}");

    private EchoResult ProtocolError(AbortReason reason, string detail)
    {
        // PS3.8 §9.2 (AA-8): on a protocol error the service-provider aborts.
        PduWriter.WriteAbort(_output, AbortSource.ServiceProvider, reason);
        NeedsFlush = true;
        return new EchoResult(EchoOutcome.ProtocolError, detail);
    }
}
