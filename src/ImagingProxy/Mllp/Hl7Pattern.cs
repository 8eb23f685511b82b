using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace ImagingProxy.Mllp;

/// <summary>
/// A routing condition on MSH, parsed once at configuration time and matched per message without allocating.
/// </summary>
/// <remarks>
/// <para>
/// Message type (MSH-9) patterns use <c>^</c> between components whatever delimiters a message declares:
/// <c>*</c> (any), <c>ADT</c> or <c>ADT^*</c> (any ADT), <c>ORM^O01</c>, <c>*^A08</c>, <c>ADT^A01^ADT_A01</c>.
/// Components left out match anything; a component is either <c>*</c> or an exact value.
/// </para>
/// <para>
/// Application and facility conditions (MSH-3..6) compare the first component (HD namespace id) exactly or accept
/// anything (<c>*</c> or null). All conditions must hold.
/// </para>
/// <para>
/// Comparisons are byte-exact and therefore case-sensitive: HL7 coded values and identifiers are case-sensitive
/// (table values are upper case by convention). Pattern text is compared as UTF-8 against the raw (still escaped)
/// field bytes, so patterns should use ASCII values, as MSH-3..6 namespace ids and MSH-9 codes are in practice.
/// </para>
/// </remarks>
public sealed class Hl7Pattern
{
    private const string Wildcard = "*";

    private static readonly SearchValues<char> s_notInLiteral = SearchValues.Create("*^|~\\&\r\n");

    private readonly byte[]? _messageCode;
    private readonly byte[]? _triggerEvent;
    private readonly byte[]? _messageStructure;
    private readonly byte[]? _sendingApplication;
    private readonly byte[]? _sendingFacility;
    private readonly byte[]? _receivingApplication;
    private readonly byte[]? _receivingFacility;
    private readonly string _text;

    private Hl7Pattern(byte[]?[] messageType, byte[]? sendingApplication, byte[]? sendingFacility, byte[]? receivingApplication, byte[]? receivingFacility, string text)
    {
        _messageCode = messageType[0];
        _triggerEvent = messageType[1];
        _messageStructure = messageType[2];
        _sendingApplication = sendingApplication;
        _sendingFacility = sendingFacility;
        _receivingApplication = receivingApplication;
        _receivingFacility = receivingFacility;
        _text = text;
    }

    /// <summary>Matches every message.</summary>
    public static Hl7Pattern Any { get; } = Create();

    /// <summary>Parses a message type pattern; throws <see cref="FormatException"/> (configuration time only).</summary>
    public static Hl7Pattern Parse(string messageType) => Create(messageType);

    /// <summary>Parses a message type pattern; false with a reason when it is not one.</summary>
    public static bool TryParse(string? messageType, [NotNullWhen(true)] out Hl7Pattern? pattern, [NotNullWhen(false)] out string? error) =>
        TryCreate(messageType, null, null, null, null, out pattern, out error);

    /// <summary>Builds a pattern from optional conditions (null or <c>*</c> = any); throws <see cref="FormatException"/>.</summary>
    public static Hl7Pattern Create(
        string? messageType = null,
        string? sendingApplication = null,
        string? sendingFacility = null,
        string? receivingApplication = null,
        string? receivingFacility = null) =>
        TryCreate(messageType, sendingApplication, sendingFacility, receivingApplication, receivingFacility, out var pattern, out var error)
            ? pattern
            : throw new FormatException(error);

    /// <summary>Builds a pattern from optional conditions (null or <c>*</c> = any); false with every problem found.</summary>
    public static bool TryCreate(
        string? messageType,
        string? sendingApplication,
        string? sendingFacility,
        string? receivingApplication,
        string? receivingFacility,
        [NotNullWhen(true)] out Hl7Pattern? pattern,
        [NotNullWhen(false)] out string? error)
    {
        pattern = null;
        var errors = new List<string>();
        var type = new byte[]?[3];
        if (messageType is not null && messageType != Wildcard)
        {
            var components = messageType.Split('^');
            if (components.Length > 3)
            {
                errors.Add($"Message type pattern '{messageType}' has more than three components (code^trigger^structure).");
            }

            for (var i = 0; i < Math.Min(components.Length, 3); i++)
            {
                type[i] = Literal(components[i], $"Message type pattern '{messageType}' component {i + 1}", errors);
            }
        }

        var sending = Literal(sendingApplication, "Sending application (MSH-3)", errors);
        var sendingAt = Literal(sendingFacility, "Sending facility (MSH-4)", errors);
        var receiving = Literal(receivingApplication, "Receiving application (MSH-5)", errors);
        var receivingAt = Literal(receivingFacility, "Receiving facility (MSH-6)", errors);
        if (errors.Count > 0)
        {
            error = string.Join(" ", errors);
            return false;
        }

        var text = $"MSH-9={messageType ?? Wildcard} MSH-3={sendingApplication ?? Wildcard} MSH-4={sendingFacility ?? Wildcard} "
            + $"MSH-5={receivingApplication ?? Wildcard} MSH-6={receivingFacility ?? Wildcard}";
        pattern = new Hl7Pattern(type, sending, sendingAt, receiving, receivingAt, text);
        error = null;
        return true;
    }

    /// <summary>Whether the header satisfies every condition.</summary>
    public bool Matches(in Hl7Header header)
    {
        if (_messageCode is not null || _triggerEvent is not null || _messageStructure is not null)
        {
            var type = header.MessageType;
            if (!Component(type, 1, _messageCode) || !Component(type, 2, _triggerEvent) || !Component(type, 3, _messageStructure))
            {
                return false;
            }
        }

        return Component(header.SendingApplication, 1, _sendingApplication)
            && Component(header.SendingFacility, 1, _sendingFacility)
            && Component(header.ReceivingApplication, 1, _receivingApplication)
            && Component(header.ReceivingFacility, 1, _receivingFacility);
    }

    public override string ToString() => _text;

    private static bool Component(in Hl7Field field, int number, byte[]? expected) =>
        expected is null || field.GetComponent(number).ValueEquals(expected);

    private static byte[]? Literal(string? value, string what, List<string> errors)
    {
        if (value is null || value == Wildcard)
        {
            return null;
        }

        if (value.Length == 0)
        {
            errors.Add($"{what} is empty; use '*' for any value.");
        }
        else if (value.AsSpan().IndexOfAny(s_notInLiteral) >= 0)
        {
            errors.Add($"{what} '{value}' contains a wildcard inside a value or an HL7 delimiter; a component is '*' or an exact value.");
        }

        return Encoding.UTF8.GetBytes(value);
    }
}
