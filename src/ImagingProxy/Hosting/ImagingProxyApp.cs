using Microsoft.AspNetCore.Builder;

namespace ImagingProxy.Hosting;

/// <summary>Builds the ImagingProxy web application: the one place that wires every feature together.</summary>
public static class ImagingProxyApp
{
    public static WebApplication Build(string[] args)
    {
        var builder = WebApplication.CreateBuilder(args);
        return builder.Build();
    }
}
