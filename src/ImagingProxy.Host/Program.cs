using ImagingProxy.Configuration;
using ImagingProxy.Hosting;

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
