namespace ImagingProxy.Forwarding;

/// <summary>
/// Reads the SOAP 1.2 action of an XDS.b request from its headers only, never the body (protocols.md §4.2):
/// the <c>action</c> parameter of <c>Content-Type</c> (RFC 3902; for MTOM it stays on the outer
/// <c>multipart/related</c> type, or some stacks put it inside the <c>start-info</c> parameter's SOAP type), else a
/// SOAP 1.1-style <c>SOAPAction</c> header as a fallback.
/// </summary>
public static class XdsAction
{
    public const string RegistryStoredQuery = "urn:ihe:iti:2007:RegistryStoredQuery";
    public const string ProvideAndRegisterDocumentSet = "urn:ihe:iti:2007:ProvideAndRegisterDocumentSet-b";
    public const string RegisterDocumentSet = "urn:ihe:iti:2007:RegisterDocumentSet-b";
    public const string RetrieveDocumentSet = "urn:ihe:iti:2007:RetrieveDocumentSet";

    /// <summary>Finds the action and classifies it; <paramref name="action"/> is the raw text found, if any.</summary>
    public static XdsTransaction Classify(string? contentType, string? soapAction, out string? action)
    {
        // One pass over the parameters (a client's header may hold thousands): the first action, and any other that differs.
        action = FindParameter(contentType, "action", out var other);
        if (other is not null)
        {
            // Two different actions in one Content-Type: which one the server acts on is anyone's guess; refused.
            action = $"{action}' and '{other}";
            return XdsTransaction.Conflicting;
        }

        if (string.IsNullOrEmpty(action))
        {
            // MTOM from WCF-style stacks: the SOAP type, with its action, is the start-info parameter's value
            // (start-info="application/soap+xml; action=\"urn:...\"").
            action = FindParameter(FindParameter(contentType, "start-info"), "action");
        }

        if (string.IsNullOrEmpty(action) && !string.IsNullOrWhiteSpace(soapAction))
        {
            action = Unquote(soapAction.AsSpan().Trim()).ToString();
        }

        if (string.IsNullOrEmpty(action))
        {
            action = null;
            return XdsTransaction.Missing;
        }

        return Classify(action);
    }

    /// <summary>Classifies a whole action URN (case-insensitive, as YARP header matching and real peers treat it).</summary>
    public static XdsTransaction Classify(string action) => action.Trim() switch
    {
        var a when a.Equals(RegistryStoredQuery, StringComparison.OrdinalIgnoreCase) => XdsTransaction.RegistryStoredQuery,
        var a when a.Equals(ProvideAndRegisterDocumentSet, StringComparison.OrdinalIgnoreCase) => XdsTransaction.ProvideAndRegisterDocumentSet,
        var a when a.Equals(RegisterDocumentSet, StringComparison.OrdinalIgnoreCase) => XdsTransaction.RegisterDocumentSet,
        var a when a.Equals(RetrieveDocumentSet, StringComparison.OrdinalIgnoreCase) => XdsTransaction.RetrieveDocumentSet,
        _ => XdsTransaction.Unknown,
    };

    /// <summary>True for the transactions served by the registry (ITI-18, ITI-42); false for the repository (ITI-41, ITI-43).</summary>
    public static bool IsRegistry(XdsTransaction transaction)
        => transaction is XdsTransaction.RegistryStoredQuery or XdsTransaction.RegisterDocumentSet;

    public static string TransactionId(XdsTransaction transaction) => transaction switch
    {
        XdsTransaction.RegistryStoredQuery => "ITI-18",
        XdsTransaction.ProvideAndRegisterDocumentSet => "ITI-41",
        XdsTransaction.RegisterDocumentSet => "ITI-42",
        XdsTransaction.RetrieveDocumentSet => "ITI-43",
        XdsTransaction.Missing => "missing",
        XdsTransaction.Conflicting => "conflicting",
        _ => "unknown",
    };

    /// <summary>
    /// Reads one parameter of a media type, honouring quoted strings (RFC 9110 §5.6.6): the first one of that name.
    /// </summary>
    internal static string? FindParameter(string? mediaType, string name) => FindParameter(mediaType, name, findDifferent: false, out _);

    /// <summary>
    /// The first parameter of that name, and in <paramref name="different"/> the first later one whose value differs from
    /// it (trimmed, case-insensitive), or null: one pass, whatever the number of parameters.
    /// </summary>
    internal static string? FindParameter(string? mediaType, string name, out string? different) => FindParameter(mediaType, name, findDifferent: true, out different);

    private static string? FindParameter(string? mediaType, string name, bool findDifferent, out string? different)
    {
        different = null;
        if (string.IsNullOrEmpty(mediaType))
        {
            return null;
        }

        string? first = null;
        var span = mediaType.AsSpan();
        var start = span.IndexOf(';');
        while (start >= 0 && start < span.Length)
        {
            span = span[(start + 1)..];
            var end = NextSeparator(span);
            var parameter = span[..end].Trim();
            var equals = parameter.IndexOf('=');
            if (equals > 0 && parameter[..equals].Trim().Equals(name, StringComparison.OrdinalIgnoreCase))
            {
                var raw = parameter[(equals + 1)..].Trim();
                var value = raw.Length >= 2 && raw[0] == '"' && raw[^1] == '"' ? Unescape(raw[1..^1]) : raw.ToString();
                if (first is null)
                {
                    first = value;
                    if (!findDifferent)
                    {
                        return first;
                    }
                }
                else if (!value.AsSpan().Trim().Equals(first.AsSpan().Trim(), StringComparison.OrdinalIgnoreCase))
                {
                    different = value;
                    return first;
                }
            }

            start = end;
        }

        return first;
    }

    private static int NextSeparator(ReadOnlySpan<char> span)
    {
        var quoted = false;
        for (var i = 0; i < span.Length; i++)
        {
            var c = span[i];
            if (c == '\\' && quoted)
            {
                i++;
            }
            else if (c == '"')
            {
                quoted = !quoted;
            }
            else if (c == ';' && !quoted)
            {
                return i;
            }
        }

        return span.Length;
    }

    /// <summary>The quoted pairs of a quoted string (<c>\"</c> for <c>"</c>) as the characters they stand for.</summary>
    private static string Unescape(ReadOnlySpan<char> value)
    {
        if (value.IndexOf('\\') < 0)
        {
            return value.ToString();
        }

        var text = new System.Text.StringBuilder(value.Length);
        for (var i = 0; i < value.Length; i++)
        {
            if (value[i] == '\\' && i + 1 < value.Length)
            {
                i++;
            }

            text.Append(value[i]);
        }

        return text.ToString();
    }

    private static ReadOnlySpan<char> Unquote(ReadOnlySpan<char> value)
        => value.Length >= 2 && value[0] == '"' && value[^1] == '"' ? value[1..^1] : value;
}
