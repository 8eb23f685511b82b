using System.Security.Cryptography.X509Certificates;

namespace ImagingProxy.Configuration;

/// <summary>
/// How a server certificate given as files is read, the same way for the validator and the DICOM and MLLP TLS listeners
/// (as Kestrel reads its endpoints' files): PEM <c>Path</c> + <c>KeyPath</c>, with <c>Password</c> when the key is
/// encrypted, or PFX <c>Path</c> + optional <c>Password</c>. A relative path is read from the content root for both.
/// </summary>
internal static class ServerCertificateFile
{
    /// <summary>
    /// The file <paramref name="path"/> names: a relative path is read from <paramref name="contentRoot"/> (the host's
    /// directory), as Kestrel reads its endpoints' certificate files, whatever the working directory.
    /// </summary>
    public static string FullPath(string path, string contentRoot) => Path.GetFullPath(path, contentRoot);

    /// <summary>Loads the certificate with its private key; throws as the loaders do (cryptographic, I/O, access errors).</summary>
    public static X509Certificate2 Load(string path, string? keyPath, string? password)
        => keyPath is null ? X509CertificateLoader.LoadPkcs12FromFile(path, password)
            : string.IsNullOrEmpty(password) ? X509Certificate2.CreateFromPemFile(path, keyPath)
            : X509Certificate2.CreateFromEncryptedPemFile(path, password, keyPath);
}
