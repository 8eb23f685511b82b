using Yarp.ReverseProxy.Forwarder;
using Yarp.ReverseProxy.Transforms;

namespace ImagingProxy.Forwarding;

/// <summary>
/// Sends the query string to the server as the client wrote it, as HAProxy and NGINX do. YARP builds the outgoing
/// request's <see cref="Uri"/>, which rewrites the query: <c>^</c> becomes <c>%5E</c>, <c>\</c> <c>%5C</c>, <c>|</c>
/// <c>%7C</c>, <c>%41</c> becomes <c>A</c>, a lone <c>%</c> <c>%25</c>. Orthanc's DICOMweb plugin (Debian 12) matches QIDO-RS
/// values without decoding them, so <c>PatientName=Doe^J*</c>, the DICOM name separator as viewers and scripts write it,
/// arrived as <c>Doe%5EJ*</c> and found nothing: a viewer saw an empty worklist where the PACS had the patient's studies.
/// </summary>
/// <remarks>
/// Only when the route's transforms left the query as the client sent it (a <c>QueryValueParameter</c> transform rebuilds
/// it: YARP's then), and only for a query of visible ASCII characters without <c>#</c> (what every HTTP/1.1 server takes
/// in a request line; anything else is left to YARP). The path is the one YARP (or <see cref="EncodedSlashPath"/>) would
/// send, in <see cref="Uri"/>'s form; only the query is taken verbatim.
/// </remarks>
public static class RawQueryString
{
    private static readonly UriCreationOptions s_verbatim = new() { DangerousDisablePathAndQueryCanonicalization = true };

    /// <summary>The characters <see cref="Uri"/> escapes or unescapes in a query (visible ASCII): a query without any is sent as written anyway.</summary>
    private static readonly System.Buffers.SearchValues<char> s_rewritten = System.Buffers.SearchValues.Create("\"<>\\^`{|}%");

    internal static void Preserve(RequestTransformContext transform)
    {
        var query = transform.Query.QueryString.Value;
        if (string.IsNullOrEmpty(query) || query.AsSpan().IndexOfAny(s_rewritten) < 0
            || !string.Equals(query, transform.HttpContext.Request.QueryString.Value, StringComparison.Ordinal) || !IsVerbatimSafe(query))
        {
            return;
        }

        var uri = transform.ProxyRequest.RequestUri ?? RequestUtilities.MakeDestinationAddress(transform.DestinationPrefix, transform.Path, transform.Query.QueryString);
        if (string.Equals(uri.Query, query, StringComparison.Ordinal))
        {
            return;
        }

        transform.ProxyRequest.RequestUri = new Uri(uri.GetLeftPart(UriPartial.Path) + query, s_verbatim);
    }

    /// <summary>Visible ASCII (<c>!</c> to <c>~</c>) without <c>#</c>: sent as it is, it cannot end the request line or start a fragment.</summary>
    internal static bool IsVerbatimSafe(string query)
    {
        foreach (var c in query)
        {
            if (c is < '!' or > '~' or '#')
            {
                return false;
            }
        }

        return true;
    }
}
