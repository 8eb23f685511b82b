using System.Text;
using Microsoft.AspNetCore.Http.Features;
using Yarp.ReverseProxy.Transforms;
using Yarp.ReverseProxy.Transforms.Builder;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Sends an encoded slash in a request path (<c>%2F</c>, an identifier that contains a <c>/</c>) to the server as the
/// client wrote it. Kestrel decodes the path but keeps <c>%2F</c> as those three characters, so a client's <c>%2F</c> and
/// <c>%252F</c> both reach YARP as <c>%2F</c>, and YARP escapes the <c>%</c>: the server was asked for <c>%252F</c>, another
/// resource (YARP issue 1419). HAProxy and NGINX pass the path unchanged. Its one request transform also runs
/// <see cref="RawQueryString"/>, which does the same for the query.
/// </summary>
/// <remarks>
/// <para>
/// Only for paths holding <c>%2F</c>, and only when the path sent on is the client's own or the client's without a
/// literal prefix (<c>PathRemovePrefix</c>): the client's raw path (<see cref="IHttpRequestFeature.RawTarget"/>), or its
/// tail, is used when it holds only RFC 3986 path characters, no dot segment (<c>%2F</c> counted as a separator), decoding
/// it as Kestrel does gives exactly the path YARP was going to send, and System.Uri keeps it as it is. Anything else (a
/// raw <c>\</c> or <c>#</c>, dot segments, a prefix written with escapes, a path another transform rebuilt with
/// <c>PathPattern</c> or <c>PathSet</c>) is left to YARP. The query string is YARP's, after the route's query transforms (and then the client's
/// own again when they left it unchanged: <see cref="RawQueryString"/>, the next transform).
/// </para>
/// </remarks>
public static class EncodedSlashPath
{
    private static readonly UTF8Encoding s_strictUtf8 = new(false, throwOnInvalidBytes: true);

    public static void Apply(TransformBuilderContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        context.AddRequestTransform(static transform =>
        {
            // The request target as the client wrote it: the path's encoded slashes, then the query (one step per request).
            Preserve(transform);
            RawQueryString.Preserve(transform);
            return ValueTask.CompletedTask;
        });
    }

    internal static void Preserve(RequestTransformContext transform)
    {
        var path = transform.Path.Value;
        if (transform.ProxyRequest.RequestUri is not null || path is null || !path.Contains("%2F", StringComparison.OrdinalIgnoreCase))
        {
            return;
        }

        var request = transform.HttpContext.Request;
        var rawTarget = transform.HttpContext.Features.Get<IHttpRequestFeature>()?.RawTarget;
        if (string.IsNullOrEmpty(rawTarget) || rawTarget[0] != '/')
        {
            return;
        }

        var query = rawTarget.IndexOf('?', StringComparison.Ordinal);
        var rawPath = query >= 0 ? rawTarget[..query] : rawTarget;
        if (TryMapRawPath((request.PathBase + request.Path).Value ?? string.Empty, rawPath, path, out var raw))
        {
            var prefix = transform.DestinationPrefix;
            var target = prefix.EndsWith('/') && raw.StartsWith('/') ? string.Concat(prefix.AsSpan(0, prefix.Length - 1), raw) : prefix + raw;
            var uri = new Uri(target + transform.Query.QueryString.Value, UriKind.Absolute);

            // Only when System.Uri sent the raw path on as it is (it would otherwise rewrite it, say unescape %41).
            if (uri.AbsolutePath.EndsWith(raw, StringComparison.Ordinal))
            {
                transform.ProxyRequest.RequestUri = uri;
            }
        }
    }

    /// <summary>
    /// The client's raw path, or its tail, that stands for <paramref name="sentPath"/>: the whole raw path when the path
    /// was not changed, the raw path without the removed prefix when one was removed; false when it cannot be told.
    /// </summary>
    internal static bool TryMapRawPath(string clientPath, string rawPath, string sentPath, out string raw)
    {
        raw = string.Empty;
        string candidate;
        if (string.Equals(clientPath, sentPath, StringComparison.Ordinal))
        {
            candidate = rawPath;
        }
        else if (clientPath.EndsWith(sentPath, StringComparison.Ordinal))
        {
            var removed = clientPath[..^sentPath.Length];
            if (removed.Contains('%', StringComparison.Ordinal) || !rawPath.StartsWith(removed, StringComparison.Ordinal))
            {
                return false;
            }

            candidate = rawPath[removed.Length..];
        }
        else
        {
            return false;
        }

        if (!IsPlainPath(candidate) || HasDotSegment(candidate) || !string.Equals(KestrelDecode(candidate), sentPath, StringComparison.Ordinal))
        {
            return false;
        }

        raw = candidate;
        return true;
    }

    /// <summary>
    /// Only RFC 3986 path characters (unreserved, sub-delims, <c>:</c>, <c>@</c>, <c>/</c>) and well-formed escapes: Kestrel
    /// accepts more (a raw <c>\</c> or <c>#</c>), which System.Uri would turn into a separator or a fragment, so that the
    /// server would get another path than the one routed.
    /// </summary>
    internal static bool IsPlainPath(string rawPath)
    {
        for (var i = 0; i < rawPath.Length; i++)
        {
            var c = rawPath[i];
            if (c == '%')
            {
                if (i + 2 >= rawPath.Length || !Uri.IsHexDigit(rawPath[i + 1]) || !Uri.IsHexDigit(rawPath[i + 2]))
                {
                    return false;
                }

                i += 2;
            }
            else if (!(char.IsAsciiLetterOrDigit(c) || "-._~!$&'()*+,;=:@/".Contains(c, StringComparison.Ordinal)))
            {
                return false;
            }
        }

        return true;
    }

    /// <summary>
    /// A <c>.</c> or <c>..</c> segment, with <c>%2F</c> and <c>%5C</c> read as separators, <c>%2E</c> as a dot, and a
    /// segment's <c>;</c> parameters left out (Tomcat's <c>..;</c>): a server that decodes the escaped separators could step
    /// out of the route's base path with it (YARP's <c>%252F</c> kept such a path inert).
    /// </summary>
    internal static bool HasDotSegment(string rawPath)
    {
        var start = 0;
        for (var i = 0; i <= rawPath.Length; i++)
        {
            var end = i == rawPath.Length || rawPath[i] == '/';
            var escapedSeparator = !end && rawPath[i] == '%' && i + 2 < rawPath.Length
                && ((rawPath[i + 1] == '2' && (rawPath[i + 2] | 0x20) == 'f') || (rawPath[i + 1] == '5' && (rawPath[i + 2] | 0x20) == 'c'));
            if (!end && !escapedSeparator)
            {
                continue;
            }

            var segment = rawPath.AsSpan(start, i - start);
            var parameters = segment.IndexOf(';');
            segment = parameters >= 0 ? segment[..parameters] : segment;
            var dots = 0;
            var other = false;
            for (var j = 0; j < segment.Length && !other; j++)
            {
                if (segment[j] == '.')
                {
                    dots++;
                }
                else if (segment[j] == '%' && j + 2 < segment.Length && segment[j + 1] == '2' && (segment[j + 2] | 0x20) == 'e')
                {
                    dots++;
                    j += 2;
                }
                else
                {
                    other = true;
                }
            }

            if (!other && dots is 1 or 2)
            {
                return true;
            }

            start = escapedSeparator ? i + 3 : i + 1;
            i = escapedSeparator ? i + 2 : i;
        }

        return false;
    }

    /// <summary>A raw path decoded as Kestrel decodes it: every escape but <c>%2F</c> (kept as written), then UTF-8; null if invalid.</summary>
    internal static string? KestrelDecode(string rawPath)
    {
        var bytes = new byte[rawPath.Length];
        var length = 0;
        for (var i = 0; i < rawPath.Length; i++)
        {
            var c = rawPath[i];
            if (c > 0x7F)
            {
                return null;
            }

            if (c == '%' && i + 2 < rawPath.Length && Uri.IsHexDigit(rawPath[i + 1]) && Uri.IsHexDigit(rawPath[i + 2]))
            {
                var value = (byte)((HexValue(rawPath[i + 1]) << 4) | HexValue(rawPath[i + 2]));
                if (value != (byte)'/')
                {
                    bytes[length++] = value;
                    i += 2;
                    continue;
                }
            }

            bytes[length++] = (byte)c;
        }

        try
        {
            return s_strictUtf8.GetString(bytes, 0, length);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    private static int HexValue(char c) => c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}
