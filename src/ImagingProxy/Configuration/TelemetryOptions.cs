namespace ImagingProxy.Configuration;

/// <summary><c>ImagingProxy:Telemetry</c>: label cardinality limits and trace export.</summary>
public sealed record TelemetryOptions
{
    /// <summary>AE titles recorded as metric labels as they are; others become <c>other</c>. When empty, the first <see cref="MaxAeTitles"/> seen.</summary>
    public List<string>? AeTitles { get; init; }

    /// <summary>Distinct AE titles recorded before the rest become <c>other</c> (default 50).</summary>
    public int? MaxAeTitles { get; init; }

    /// <summary>HL7 message types (MSH-9 code^trigger) recorded as labels; when empty, the first <see cref="MaxMessageTypes"/> seen.</summary>
    public List<string>? MessageTypes { get; init; }

    /// <summary>Distinct HL7 message types recorded before the rest become <c>other</c> (default 50).</summary>
    public int? MaxMessageTypes { get; init; }

    /// <summary>OTLP endpoint for traces (e.g. <c>http://otel-collector:4317</c>); traces are off when unset.</summary>
    public string? OtlpEndpoint { get; init; }

    /// <summary><c>Grpc</c> (default, port 4317) or <c>HttpProtobuf</c> (port 4318; the endpoint is the full <c>/v1/traces</c> URL).</summary>
    public string? OtlpProtocol { get; init; }
}
