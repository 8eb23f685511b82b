using System.Net;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace ImagingProxy.Hosting;

/// <summary>One bound listener: its name, what it serves, and its Kestrel <see cref="ListenOptions"/>.</summary>
public sealed class ProxyListener(string name, string kind, ListenOptions options) : IProxyListenerFeature
{
    public string Name { get; } = name;

    /// <summary>The <see cref="Kind"/> of Kestrel (HTTP) endpoints.</summary>
    public const string HttpKind = "Http";

    /// <summary>The <see cref="Kind"/> of <c>ImagingProxy:Dicom:Listeners</c>.</summary>
    public const string DicomKind = "Dicom";

    /// <summary>The <see cref="Kind"/> of <c>ImagingProxy:Mllp:Listeners</c>.</summary>
    public const string MllpKind = "Mllp";

    /// <summary>The <c>protocol</c> metric label of a raw listener of <paramref name="kind"/>: <c>dicom</c> or <c>mllp</c>.</summary>
    public static string ProtocolLabel(string kind) => kind == DicomKind ? "dicom" : "mllp";

    /// <summary><c>Http</c> for Kestrel endpoints, <c>Dicom</c> or <c>Mllp</c> for raw listeners.</summary>
    public string Kind { get; } = kind;

    public ListenOptions Options { get; } = options;

    /// <summary>The bound address; the real port after start-up even when 0 was configured.</summary>
    public EndPoint EndPoint => Options.EndPoint;

    /// <summary>Marks every connection of this listener with its name, before any other middleware.</summary>
    public void Attach()
    {
        Options.Use(next => connection =>
        {
            connection.Features.Set<IProxyListenerFeature>(this);
            return next(connection);
        });
    }
}
