namespace ImagingProxy.Health;

/// <summary>
/// Answers that count as failures of an HTTP server: a list of codes (429 and 500-599) and <c>5xx</c> (every 500-599),
/// separated by commas or spaces. The syntax of two cluster metadata keys: passive health's
/// <c>TransportFailureRateHealthPolicy.FailureStatusCodes</c> (not set, no status counts: YARP's behaviour) and the
/// retry step's <c>Retry.StatusCodes</c> (<see cref="Forwarding.RetryableStatus"/>).
/// </summary>
/// <remarks>
/// Only codes that speak of the server's state are accepted: 4xx describe the request (429 excepted: the server is
/// overloaded), and a 2xx or 3xx is an answer. 501 and 505 describe the request too, but an operator who lists them (or
/// <c>5xx</c>) gets them.
/// </remarks>
public sealed class FailureStatusCodes
{
    /// <summary>The entry that stands for every code from 500 to 599.</summary>
    public const string AllServerErrors = "5xx";

    private readonly UInt128 _serverErrors;
    private readonly bool _tooManyRequests;

    private FailureStatusCodes(UInt128 serverErrors, bool tooManyRequests)
    {
        _serverErrors = serverErrors;
        _tooManyRequests = tooManyRequests;
    }

    /// <summary>Whether an answer with <paramref name="statusCode"/> counts as a failure.</summary>
    public bool Contains(int statusCode) => statusCode is >= 500 and <= 599
        ? ((_serverErrors >> (statusCode - 500)) & UInt128.One) != UInt128.Zero
        : statusCode == 429 && _tooManyRequests;

    /// <summary>
    /// Reads the metadata value: null (and true) when it is empty; false for an entry that is neither a code of 429 or
    /// 500-599 nor <see cref="AllServerErrors"/>, which <paramref name="invalid"/> then names.
    /// </summary>
    public static bool TryParse(string? text, out FailureStatusCodes? codes, out string? invalid)
    {
        codes = null;
        invalid = null;
        var serverErrors = UInt128.Zero;
        var tooManyRequests = false;
        var any = false;
        var list = text.AsSpan();
        foreach (var range in list.SplitAny(", "))
        {
            var entry = list[range];
            if (entry.IsEmpty)
            {
                continue;
            }

            any = true;
            if (entry.Equals(AllServerErrors, StringComparison.OrdinalIgnoreCase))
            {
                serverErrors = (UInt128.One << 100) - UInt128.One;
            }
            else if (entry.Length == 3 && int.TryParse(entry, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var code)
                && code is 429 or (>= 500 and <= 599))
            {
                if (code == 429)
                {
                    tooManyRequests = true;
                }
                else
                {
                    serverErrors |= UInt128.One << (code - 500);
                }
            }
            else
            {
                invalid = entry.ToString();
                return false;
            }
        }

        codes = any ? new FailureStatusCodes(serverErrors, tooManyRequests) : null;
        return true;
    }
}
