namespace ImagingProxy.Hosting;

/// <summary>Connection feature naming the listener (Kestrel endpoint or DICOM/MLLP listener) a connection arrived on.</summary>
public interface IProxyListenerFeature
{
    string Name { get; }
}
