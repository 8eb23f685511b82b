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
catch (IOException ex) when (ex.InnerException is AddressInUseException or SocketException)
{
    // Kestrel could not bind an endpoint or listener (the address is in use, not available, or not permitted): its
    // message names the address. The host logged the failure too.
    await Console.Error.WriteLineAsync($"ImagingProxy could not start: {ex.Message}");
    return 3;
}
