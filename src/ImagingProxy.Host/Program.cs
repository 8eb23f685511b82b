using ImagingProxy.Hosting;

var app = ImagingProxyApp.Build(args);
await app.RunAsync();
