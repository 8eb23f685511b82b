using System.Text.Json;
using System.Text.Json.Nodes;
using ImagingProxy.Testing;

namespace ImagingProxy.PeerTests.Deploy;

/// <summary>
/// The pod's configuration file adapted to this machine: certificate paths pointing at a <see cref="TestCertificate"/>
/// instead of the Secret mount, and (for starting it) every listener on 127.0.0.1 port 0. Nothing else changes.
/// </summary>
public static class LocalConfiguration
{
    private static readonly JsonDocumentOptions s_options = new() { CommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true };

    /// <summary>Certificate paths (Kestrel endpoints, default certificate, TLS listeners) replaced by the test certificate's files.</summary>
    public static string WithCertificate(string json, TestCertificate certificate)
    {
        var root = Parse(json);
        foreach (var found in Certificates(root))
        {
            Replace(found, certificate);
        }

        return root.ToJsonString();
    }

    /// <summary>As <see cref="WithCertificate"/>, and every Kestrel endpoint, DICOM and MLLP listener bound to 127.0.0.1:0.</summary>
    public static string OnLoopback(string json, TestCertificate certificate)
    {
        var root = Parse(WithCertificate(json, certificate));
        foreach (var (_, endpoint) in Children(root["Kestrel"]?["Endpoints"]))
        {
            var url = new Uri(endpoint["Url"]!.GetValue<string>());
            endpoint["Url"] = $"{url.Scheme}://127.0.0.1:0";
        }

        foreach (var (_, listener) in RawListeners(root))
        {
            listener["Address"] = "127.0.0.1";
            listener["Port"] = 0;
        }

        return root.ToJsonString();
    }

    /// <summary>DICOM and MLLP listeners by name.</summary>
    public static IEnumerable<(string Name, JsonObject Listener)> RawListeners(JsonObject root)
        => Children(root["ImagingProxy"]?["Dicom"]?["Listeners"]).Concat(Children(root["ImagingProxy"]?["Mllp"]?["Listeners"]));

    public static JsonObject Parse(string json) => JsonNode.Parse(json, documentOptions: s_options)!.AsObject();

    private static IEnumerable<JsonObject> Certificates(JsonObject root)
    {
        if (root["Kestrel"]?["Certificates"]?["Default"] is JsonObject defaultCertificate)
        {
            yield return defaultCertificate;
        }

        foreach (var (_, endpoint) in Children(root["Kestrel"]?["Endpoints"]))
        {
            if (endpoint["Certificate"] is JsonObject certificate)
            {
                yield return certificate;
            }
        }

        foreach (var (_, listener) in RawListeners(root))
        {
            if (listener["Tls"] is JsonObject tls)
            {
                yield return tls;
            }
        }
    }

    private static void Replace(JsonObject certificate, TestCertificate test)
    {
        if (certificate["Path"] is not null)
        {
            certificate["Path"] = test.CertificatePath;
        }

        if (certificate["KeyPath"] is not null)
        {
            certificate["KeyPath"] = test.KeyPath;
        }
    }

    private static List<(string Name, JsonObject Value)> Children(JsonNode? node)
        => node is JsonObject parent
            ? [.. parent.Where(p => p.Value is JsonObject).Select(p => (p.Key, (JsonObject)p.Value!))]
            : [];
}
