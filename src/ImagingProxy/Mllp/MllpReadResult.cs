namespace ImagingProxy.Mllp;

/// <summary>Outcome of one <see cref="MllpFrameReader.TryReadFrame"/> call.</summary>
public enum MllpReadResult
{
    /// <summary>No complete frame in the buffer; read more (examined = buffer end).</summary>
    NeedMoreData = 0,

    /// <summary>A complete frame was read; the message is the payload between &lt;SB&gt; and &lt;EB&gt;&lt;CR&gt;.</summary>
    Frame,

    /// <summary>
    /// Bytes before a &lt;SB&gt; (garbage, stray CR/LF between frames, or a frame cut short by a new &lt;SB&gt;) were
    /// consumed and are returned as the message.
    /// </summary>
    BytesOutsideFrame,

    /// <summary>
    /// A frame grew past the maximum; the bytes seen so far were consumed and are returned as the message.
    /// The reader then skips, without further reports, to the frame's &lt;EB&gt;&lt;CR&gt; or the next &lt;SB&gt;.
    /// </summary>
    FrameTooLarge,

    /// <summary>The stream ended between frames (returned by <see cref="MllpFrameReader.ClassifyEndOfStream"/>).</summary>
    EndOfStream,

    /// <summary>The stream ended inside a frame (returned by <see cref="MllpFrameReader.ClassifyEndOfStream"/>).</summary>
    IncompleteFrameAtEndOfStream,
}
