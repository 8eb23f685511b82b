// A bare YARP proxy: the reference the HTTP benchmark reads ImagingProxy's Viewers endpoint against (see the .csproj).

// As ImagingProxy's InlineScheduling (its default): socket completions run on the thread that saw them.
if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") is null)
{
    Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
}

var builder = WebApplication.CreateSlimBuilder(args);

// As ImagingProxy's InlineScheduling too: Kestrel's transport runs the application's reads inline, no thread-pool hop.
builder.WebHost.UseSockets(sockets => sockets.UnsafePreferInlineScheduling = true);
var file = builder.Configuration["config"] ?? throw new ArgumentException("usage: YarpBare --config FILE");
builder.Configuration.AddJsonFile(Path.GetFullPath(file), optional: false);
builder.WebHost.UseKestrelHttpsConfiguration();
builder.Services.AddReverseProxy().LoadFromConfig(builder.Configuration.GetSection("ReverseProxy"));
var app = builder.Build();
app.MapReverseProxy();
app.Run();
