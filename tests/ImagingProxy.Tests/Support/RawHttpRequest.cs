using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace ImagingProxy.Tests.Support;

/// <summary>
/// An HTTP/1.1 request read from a raw socket, for test servers that answer the way some real ones misbehave: the head
/// (<see cref="Head"/>), and the body bytes that came in the same reads (<see cref="BodyBytesRead"/>).
/// </summary>
internal sealed class RawHttpRequest
{
    private const int ReadSize = 64 * 1024;

    private RawHttpRequest(string head, long bodyBytesRead)
    {
        Head = head;
        BodyBytesRead = bodyBytesRead;
    }

    /// <summary>Request line and headers, without the blank line that ends them.</summary>
    public string Head { get; }

    /// <summary>Body bytes read so far.</summary>
    public long BodyBytesRead { get; private set; }

    /// <summary>The Content-Length header's value, or null without one.</summary>
    public long? ContentLength
    {
        get
        {
            foreach (var line in Head.Split("\r\n"))
            {
                if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))
                {
                    return long.Parse(line["Content-Length:".Length..].Trim(), CultureInfo.InvariantCulture);
                }
            }

            return null;
        }
    }

    /// <summary>Reads until the end of the head; null when the peer closed first.</summary>
    public static async Task<RawHttpRequest?> ReadHeadAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[ReadSize];
        var received = new List<byte>();
        int end;
        while ((end = IndexOfHeadEnd(received)) < 0)
        {
            var read = await socket.ReceiveAsync(buffer, cancellationToken);
            if (read == 0)
            {
                return null;
            }

            received.AddRange(buffer.AsSpan(0, read));
        }

        return new RawHttpRequest(Encoding.ASCII.GetString([.. received], 0, end), received.Count - end - 4);
    }

    /// <summary>Reads the rest of a Content-Length body (or until the peer closes); <see cref="BodyBytesRead"/> counts it.</summary>
    public async Task ReadBodyAsync(Socket socket, CancellationToken cancellationToken)
    {
        var buffer = new byte[ReadSize];
        var length = ContentLength ?? 0;
        while (BodyBytesRead < length)
        {
            var read = await socket.ReceiveAsync(buffer, cancellationToken);
            if (read == 0)
            {
                return;
            }

            BodyBytesRead += read;
        }
    }

    private static int IndexOfHeadEnd(List<byte> bytes)
    {
        for (var i = 0; i + 3 < bytes.Count; i++)
        {
            if (bytes[i] == '\r' && bytes[i + 1] == '\n' && bytes[i + 2] == '\r' && bytes[i + 3] == '\n')
            {
                return i;
            }
        }

        return -1;
    }
}
