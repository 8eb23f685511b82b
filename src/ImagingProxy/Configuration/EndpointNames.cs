namespace ImagingProxy.Configuration;

/// <summary>The Kestrel named endpoints the product defines (<c>Kestrel:Endpoints:NAME</c>).</summary>
public static class EndpointNames
{
    public const string Viewers = "Viewers";
    public const string Xds = "Xds";
    public const string Admin = "Admin";
}
