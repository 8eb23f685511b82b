namespace ImagingProxy.Testing;

/// <summary>Builds --config JSON for tests: every endpoint on 127.0.0.1 port 0.</summary>
public static class TestConfig
{
    public static string Build(TestCertificate certificate, string clusters, string routes = "{}", string imagingProxy = "{}")
        => $$"""
        {
          "Kestrel": {
            "Endpoints": {
              "Viewers": { "Url": "https://127.0.0.1:0", "Certificate": { "Path": "{{Escape(certificate.CertificatePath)}}", "KeyPath": "{{Escape(certificate.KeyPath)}}" } },
              "Xds": { "Url": "http://127.0.0.1:0" },
              "Admin": { "Url": "http://127.0.0.1:0" }
            }
          },
          "ReverseProxy": { "Routes": {{routes}}, "Clusters": {{clusters}} },
          "ImagingProxy": {{imagingProxy}}
        }
        """;

    /// <summary>An Http cluster over the given backends.</summary>
    public static string Cluster(string extra, params TestBackend[] backends)
    {
        var destinations = string.Join(", ", backends.Select(b => $$"""
            "{{b.Name}}": { "Address": "{{b.Url}}" }
            """));
        return $$"""
            { {{(extra.Length > 0 ? extra + "," : "")}} "Destinations": { {{destinations}} } }
            """;
    }

    private static string Escape(string path) => path.Replace("\\", "\\\\", StringComparison.Ordinal);
}
