namespace ImagingProxy.PeerTests.Deploy;

/// <summary>A stage of a multi-stage Dockerfile: its <c>FROM</c> and the instructions up to the next <c>FROM</c>.</summary>
/// <param name="Image">The base image the <c>FROM</c> names.</param>
/// <param name="Name">The <c>AS</c> name, or null.</param>
/// <param name="From">The <c>FROM</c> instruction itself.</param>
/// <param name="Instructions">The instructions after the <c>FROM</c>.</param>
public sealed record DockerStage(string Image, string? Name, DockerInstruction From, IReadOnlyList<DockerInstruction> Instructions);
