using System.Buffers;
using System.Buffers.Binary;

namespace ImagingProxy.Dicom;

/// <summary>
/// Follows one direction of a relayed association without buffering PDUs: fed every chunk in order, split anywhere,
/// it tracks PDU headers (PS3.8 §9.3.1), PDV item headers and message control headers (§9.3.5, Annex E), and
/// reassembles only command fragments, into one reused buffer bounded by <c>maxCommandLength</c>. Data set bytes are
/// skipped without copying. It never throws on wire data: broken framing is reported once, then bytes are only counted.
/// Not thread safe: one instance per direction, fed from the relay loop.
/// </summary>
public sealed class DimseObserver
{
    /// <summary>Default bound for a reassembled command set; real ones are 68-200 bytes.</summary>
    public const int DefaultMaxCommandLength = 16 * 1024;

    internal const int PdvHeaderLength = 6;
    internal const int InitialCommandCapacity = 256;

    private readonly IDimseObserverEvents _events;
    private readonly int _maxCommandLength;
    private readonly byte[] _header = new byte[PduHeader.Size];
    private int _headerFilled;
    private State _state;
    private PduType _pduType;
    private uint _pduRemaining;
    private uint _pdvRemaining;
    private byte _pdvContextId;
    private bool _pdvIsCommand;
    private bool _pdvIsLast;
    private byte[]? _command;
    private int _commandLength;
    private long _commandTotal;
    private int _commandContextId = -1;

    public DimseObserver(IDimseObserverEvents events, int maxCommandLength = DefaultMaxCommandLength)
    {
        ArgumentNullException.ThrowIfNull(events);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxCommandLength, 8);
        _events = events;
        _maxCommandLength = maxCommandLength;
    }

    private enum State
    {
        PduHeader,
        SkipBody,
        FixedBody,
        PdvHeader,
        PdvBody,
        Malformed,
    }

    /// <summary>Every byte observed, malformed or not.</summary>
    public long TotalBytes { get; private set; }

    public long PduCount { get; private set; }

    public long CommandCount { get; private set; }

    public long UnparsedCommandCount { get; private set; }

    public bool IsMalformed => _state == State.Malformed;

    /// <summary>True between PDUs: the bytes so far end on a PDU boundary.</summary>
    public bool IsAtPduBoundary => _state == State.PduHeader && _headerFilled == 0;

    public void Observe(in ReadOnlySequence<byte> chunk)
    {
        foreach (var segment in chunk)
        {
            Observe(segment.Span);
        }
    }

    public void Observe(ReadOnlySpan<byte> chunk)
    {
        TotalBytes += chunk.Length;
        while (!chunk.IsEmpty)
        {
            switch (_state)
            {
                case State.PduHeader:
                    chunk = FillHeader(chunk, PduHeader.Size);
                    if (!PduReader.IsKnownType(_header[0]))
                    {
                        Fail(DimseStreamError.UnknownPduType);
                    }
                    else if (_headerFilled == PduHeader.Size)
                    {
                        StartPdu();
                    }

                    break;

                case State.SkipBody:
                    var skip = (int)Math.Min(_pduRemaining, (uint)chunk.Length);
                    chunk = chunk[skip..];
                    _pduRemaining -= (uint)skip;
                    if (_pduRemaining == 0)
                    {
                        _state = State.PduHeader;
                    }

                    break;

                case State.FixedBody:
                    chunk = FillHeader(chunk, 4);
                    if (_headerFilled == 4)
                    {
                        EndFixedPdu();
                    }

                    break;

                case State.PdvHeader:
                    chunk = FillHeader(chunk, PdvHeaderLength);
                    if (_headerFilled == PdvHeaderLength)
                    {
                        StartPdv();
                    }

                    break;

                case State.PdvBody:
                    var take = (int)Math.Min(_pdvRemaining, (uint)chunk.Length);
                    if (_pdvIsCommand)
                    {
                        AppendCommand(chunk[..take]);
                    }

                    chunk = chunk[take..];
                    _pdvRemaining -= (uint)take;
                    _pduRemaining -= (uint)take;
                    if (_pdvRemaining == 0)
                    {
                        EndPdv();
                    }

                    break;

                default:
                    return;
            }
        }
    }

    private ReadOnlySpan<byte> FillHeader(ReadOnlySpan<byte> chunk, int size)
    {
        var count = Math.Min(size - _headerFilled, chunk.Length);
        chunk[..count].CopyTo(_header.AsSpan(_headerFilled));
        _headerFilled += count;
        return chunk[count..];
    }

    private void StartPdu()
    {
        _headerFilled = 0;
        _pduType = (PduType)_header[0];
        _pduRemaining = BinaryPrimitives.ReadUInt32BigEndian(_header.AsSpan(2));
        PduCount++;
        _events.OnPdu(new PduHeader(_pduType, _pduRemaining));
        switch (_pduType)
        {
            case PduType.PDataTransfer:
                EnterPdvHeader();
                break;
            case PduType.AssociateReject or PduType.Abort:
                _state = _pduRemaining == 4 ? State.FixedBody : Fail(DimseStreamError.InvalidFixedPduLength);
                break;
            case PduType.ReleaseRequest or PduType.ReleaseResponse:
                _state = _pduRemaining == 4 ? State.SkipBody : Fail(DimseStreamError.InvalidFixedPduLength);
                break;
            default:
                // A-ASSOCIATE-RQ/AC: parsed by the proxy itself, skipped here.
                _state = _pduRemaining == 0 ? State.PduHeader : State.SkipBody;
                break;
        }
    }

    private void EndFixedPdu()
    {
        _headerFilled = 0;
        _pduRemaining = 0;
        _state = State.PduHeader;
        if (_pduType == PduType.Abort)
        {
            _events.OnAbort((AbortSource)_header[2], (AbortReason)_header[3]);
        }
        else
        {
            _events.OnAssociateReject((AssociateRejectResult)_header[1], (AssociateRejectSource)_header[2], _header[3]);
        }
    }

    private void EnterPdvHeader()
    {
        // PS3.8 §9.3.5: a P-DATA-TF holds one or more PDV items, each at least 6 bytes.
        _state = _pduRemaining >= PdvHeaderLength ? State.PdvHeader : Fail(DimseStreamError.InvalidPdvLength);
    }

    private void StartPdv()
    {
        _headerFilled = 0;
        _pduRemaining -= PdvHeaderLength;
        var itemLength = BinaryPrimitives.ReadUInt32BigEndian(_header);
        if (itemLength < 2 || itemLength - 2 > _pduRemaining)
        {
            Fail(DimseStreamError.InvalidPdvLength);
            return;
        }

        _pdvRemaining = itemLength - 2;
        _pdvContextId = _header[4];
        var control = (MessageControlHeader)_header[5];
        _pdvIsCommand = (control & MessageControlHeader.Command) != 0;
        _pdvIsLast = (control & MessageControlHeader.LastFragment) != 0;
        if (_pdvIsCommand)
        {
            if (_commandContextId >= 0 && _commandContextId != _pdvContextId)
            {
                Fail(DimseStreamError.PresentationContextMismatch);
                return;
            }

            _commandContextId = _pdvContextId;
        }

        _state = State.PdvBody;
        if (_pdvRemaining == 0)
        {
            EndPdv();
        }
    }

    private void EndPdv()
    {
        if (_pdvIsCommand && _pdvIsLast)
        {
            EndCommand();
        }

        if (_pduRemaining == 0)
        {
            _state = State.PduHeader;
        }
        else
        {
            EnterPdvHeader();
        }
    }

    private void AppendCommand(ReadOnlySpan<byte> fragment)
    {
        _commandTotal += fragment.Length;
        if (_commandTotal > _maxCommandLength)
        {
            // Over the bound: stop copying; the command is reported as unparsed when its last fragment ends.
            return;
        }

        var needed = _commandLength + fragment.Length;
        if (_command is null || _command.Length < needed)
        {
            var capacity = Math.Min(_maxCommandLength, Math.Max(needed, Math.Max(InitialCommandCapacity, (_command?.Length ?? 0) * 2)));
            var grown = new byte[capacity];
            _command?.AsSpan(0, _commandLength).CopyTo(grown);
            _command = grown;
        }

        fragment.CopyTo(_command.AsSpan(_commandLength));
        _commandLength = needed;
    }

    private void EndCommand()
    {
        var contextId = _pdvContextId;
        var total = _commandTotal;
        DimseCommand command = default;
        var parsed = total <= _maxCommandLength
            && DimseCommandReader.TryRead(_command.AsSpan(0, _commandLength), out command);
        _commandLength = 0;
        _commandTotal = 0;
        _commandContextId = -1;
        if (parsed)
        {
            // The command views the reused buffer, which stays intact until the next command fragment.
            CommandCount++;
            _events.OnCommand(contextId, command);
        }
        else
        {
            UnparsedCommandCount++;
            _events.OnCommandUnparsed(contextId, total);
        }
    }

    private State Fail(DimseStreamError error)
    {
        _state = State.Malformed;
        _events.OnMalformed(error);
        return State.Malformed;
    }
}
