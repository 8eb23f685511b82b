namespace ImagingProxy.Configuration;

/// <summary>A <c>tcp://host:port</c> destination address of a DICOM or MLLP cluster.</summary>
public readonly record struct TcpAddress(string Host, int Port)
{
    public static bool TryParse(string? text, out TcpAddress address)
    {
        address = default;
        if (string.IsNullOrWhiteSpace(text) || !Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme != "tcp")
        {
            return false;
        }

        if (uri.IsDefaultPort || uri.Port < 1 || uri.Port > 65535 || string.IsNullOrEmpty(uri.Host) || (uri.AbsolutePath != "/" && uri.AbsolutePath.Length > 0))
        {
            return false;
        }

        address = new TcpAddress(uri.Host.Trim('[', ']'), uri.Port);
        return true;
    }

    public override string ToString() => Host.Contains(':', StringComparison.Ordinal) ? $"tcp://[{Host}]:{Port}" : $"tcp://{Host}:{Port}";
}
