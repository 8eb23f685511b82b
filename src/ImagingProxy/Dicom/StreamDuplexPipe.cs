using System.IO.Pipelines;

namespace ImagingProxy.Dicom;

/// <summary>A reader and writer pair presented as one transport.</summary>
internal sealed class StreamDuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
{
    public PipeReader Input { get; } = input;

    public PipeWriter Output { get; } = output;
}
