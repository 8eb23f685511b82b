using System.Net.Sockets;
using ImagingProxy.Configuration;
using ImagingProxy.Hosting;
using Microsoft.AspNetCore.Connections;

try
{
    var app = ImagingProxyApp.Build(args);
    await app.RunAsync();
    return 0;
}
catch (InvalidConfigurationException ex)
{
    await Console.Error.WriteLineAsync(ex.Message);
    return 2;
}
catch (Exception ex) when (ex is SocketException or IOException { InnerException: AddressInUseException or SocketException or AggregateException })
{
    // Kestrel could not bind an endpoint or listener: in use (IOException around AddressInUseException), not on this
    // host or not permitted (the SocketException itself), or neither loopback address of localhost. The host logged
    // the failure too.
    await Console.Error.WriteLineAsync($"ImagingProxy could not start: {ex.Message}");
    return 3;
}
