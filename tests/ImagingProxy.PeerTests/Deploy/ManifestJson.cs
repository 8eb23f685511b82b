using System.Text.Json;

namespace ImagingProxy.PeerTests.Deploy;

/// <summary>Small helpers to walk rendered Kubernetes objects.</summary>
public static class ManifestJson
{
    /// <summary>Follows property names; fails naming the path when one is missing.</summary>
    public static JsonElement At(this JsonElement element, params string[] path)
    {
        var found = element.Find(path);
        Assert.True(found.HasValue, $"missing {string.Join('.', path)} in {Describe(element)}");
        return found.Value;
    }

    /// <summary>Follows property names; null when one is missing.</summary>
    public static JsonElement? Find(this JsonElement element, params string[] path)
    {
        var current = element;
        foreach (var name in path)
        {
            if (current.ValueKind != JsonValueKind.Object || !current.TryGetProperty(name, out current))
            {
                return null;
            }
        }

        return current;
    }

    /// <summary>The items of an array property; empty when the property is missing.</summary>
    public static IEnumerable<JsonElement> Items(this JsonElement element, params string[] path)
        => element.Find(path) is { ValueKind: JsonValueKind.Array } array ? array.EnumerateArray() : [];

    /// <summary>A port given by number or by the name of one of the container's ports.</summary>
    public static int ResolvePort(this JsonElement container, JsonElement port)
    {
        if (port.ValueKind == JsonValueKind.Number)
        {
            return port.GetInt32();
        }

        var name = port.GetString();
        var match = container.Items("ports").Where(p => p.Find("name")?.GetString() == name).ToList();
        Assert.True(match.Count == 1, $"container {container.At("name").GetString()} has no port named '{name}'");
        return match[0].At("containerPort").GetInt32();
    }

    private static string Describe(JsonElement element)
        => element.Find("kind") is { } kind && element.Find("metadata", "name") is { } name ? $"{kind.GetString()} {name.GetString()}" : "the object";
}
