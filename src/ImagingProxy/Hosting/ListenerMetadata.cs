namespace ImagingProxy.Hosting;

/// <summary>Endpoint metadata: the endpoint is served only on the named listener (e.g. admin paths on <c>Admin</c>).</summary>
public sealed record ListenerMetadata(string Name);
