namespace ImagingProxy.Configuration;

/// <summary>PS3.5 VR AE: 1-16 characters of the default repertoire, no backslash, no control characters; leading and trailing spaces are insignificant.</summary>
public static class AeTitle
{
    public const int MaxLength = 16;

    public static bool IsValid(string? value)
    {
        if (value is null)
        {
            return false;
        }

        var trimmed = value.Trim(' ');
        if (trimmed.Length is 0 or > MaxLength)
        {
            return false;
        }

        foreach (var c in trimmed)
        {
            if (c < 0x20 || c > 0x7E || c == '\\')
            {
                return false;
            }
        }

        return true;
    }
}
