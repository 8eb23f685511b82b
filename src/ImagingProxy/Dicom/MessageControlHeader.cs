namespace ImagingProxy.Dicom;

/// <summary>Message Control Header of a PDV item (PS3.8 Annex E.2). Bits 2-7 are sent as 0 and ignored on receipt.</summary>
[Flags]
public enum MessageControlHeader : byte
{
    /// <summary>Data set fragment, more fragments follow.</summary>
    None = 0,

    /// <summary>Bit 0: the fragment is a command (otherwise a data set).</summary>
    Command = 0x01,

    /// <summary>Bit 1: the last fragment of its command or data set.</summary>
    LastFragment = 0x02,
}
