using System.Globalization;
using System.Net;
using ImagingProxy.Forwarding;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.Configuration;

/// <summary>
/// Validates the whole configuration (ReverseProxy, ImagingProxy, Kestrel) before anything is applied and reports
/// every problem at once, each naming the key it is about. Works on the raw strings, so a value the binder could
/// not even convert is reported instead of thrown.
/// </summary>
public static class ConfigurationValidator
{
    private static readonly string[] s_loadBalancingPolicies =
        ["FirstAlphabetical", "Random", "RoundRobin", "LeastRequests", "PowerOfTwoChoices"];

    private static readonly string[] s_availableDestinationsPolicies = ["HealthyAndUnknown", "HealthyOrPanic"];

    public static IReadOnlyList<string> Validate(IConfiguration configuration)
    {
        var errors = new List<string>();
        var clusters = ValidateClusters(configuration.GetSection("ReverseProxy:Clusters"), errors);
        var ports = new List<(string Key, IPAddress? Address, int Port)>();
        var endpoints = ValidateKestrelEndpoints(configuration.GetSection("Kestrel"), ports, errors);
        ValidateRoutes(configuration.GetSection("ReverseProxy:Routes"), clusters, endpoints, errors);
        errors.AddRange(KestrelLimitsConfig.Validate(configuration.GetSection(KestrelLimitsConfig.SectionPath)));

        var proxy = configuration.GetSection(ImagingProxyOptions.SectionName);
        var dicomListeners = ValidateListeners(proxy.GetSection("Dicom:Listeners"), ports, dicom: true, errors);
        var mllpListeners = ValidateListeners(proxy.GetSection("Mllp:Listeners"), ports, dicom: false, errors);
        ValidateDicom(proxy.GetSection("Dicom"), clusters, dicomListeners, errors);
        ValidateMllp(proxy.GetSection("Mllp"), clusters, mllpListeners, errors);
        ValidateXds(proxy.GetSection("Xds"), clusters, endpoints, errors);
        ValidatePositiveTime(proxy, "DrainTimeout", errors);
        ValidateBoolean(proxy, "InlineScheduling", errors);
        ValidateIntegerRange(proxy, "SocketEngines", 1, ImagingProxyOptions.MaxSocketEngines, errors);
        var telemetry = proxy.GetSection("Telemetry");
        ValidatePositiveInteger(telemetry, "MaxAeTitles", errors);
        ValidatePositiveInteger(telemetry, "MaxMessageTypes", errors);
        ValidateList(telemetry, "AeTitles", errors);
        ValidateList(telemetry, "MessageTypes", errors);
        var otlp = telemetry["OtlpEndpoint"];
        if (!string.IsNullOrEmpty(otlp) && !Uri.TryCreate(otlp, UriKind.Absolute, out _))
        {
            errors.Add($"{telemetry.Path}:OtlpEndpoint: '{otlp}' is not an absolute URI.");
        }

        var otlpProtocol = telemetry["OtlpProtocol"];
        if (!string.IsNullOrEmpty(otlpProtocol) && otlpProtocol is not ("Grpc" or "HttpProtobuf"))
        {
            errors.Add($"{telemetry.Path}:OtlpProtocol: '{otlpProtocol}' is unknown (Grpc, HttpProtobuf).");
        }
        ValidatePortConflicts(ports, errors);
        ValidateKnownKeys(proxy, typeof(ImagingProxyOptions), errors);
        return errors;
    }

    /// <summary>Keys of the <c>ImagingProxy</c> section read outside <see cref="ImagingProxyOptions"/>.</summary>
    private static readonly string[] s_extraProxyKeys = ["InlineScheduling"];

    /// <summary>
    /// Every key of the <c>ImagingProxy</c> section is one the options read (<see cref="ImagingProxyOptions"/> and the
    /// records under it, the names of listeners and routes aside): a misspelt key is read by nobody, and a misspelt
    /// restriction ("CallingAeTitle") left its route open. Keys starting with <c>//</c> are comments, as in the examples.
    /// </summary>
    private static void ValidateKnownKeys(IConfigurationSection section, Type type, List<string> errors)
    {
        var properties = type.GetProperties(System.Reflection.BindingFlags.Public | System.Reflection.BindingFlags.Instance);
        foreach (var child in section.GetChildren())
        {
            if (child.Key.StartsWith("//", StringComparison.Ordinal))
            {
                continue;
            }

            var property = Array.Find(properties, p => string.Equals(p.Name, child.Key, StringComparison.OrdinalIgnoreCase));
            if (property is null)
            {
                if (type != typeof(ImagingProxyOptions) || !s_extraProxyKeys.Contains(child.Key, StringComparer.OrdinalIgnoreCase))
                {
                    var known = properties.Select(p => p.Name).Concat(type == typeof(ImagingProxyOptions) ? s_extraProxyKeys : []).Order(StringComparer.Ordinal);
                    errors.Add($"{child.Path}: unknown key (known here: {string.Join(", ", known)}).");
                }

                continue;
            }

            var propertyType = Nullable.GetUnderlyingType(property.PropertyType) ?? property.PropertyType;
            if (propertyType.IsGenericType && propertyType.GetGenericTypeDefinition() == typeof(Dictionary<,>))
            {
                // Named entries (listeners, routes): each one's keys are those of its record.
                foreach (var entry in child.GetChildren())
                {
                    ValidateKnownKeys(entry, propertyType.GetGenericArguments()[1], errors);
                }
            }
            else if (propertyType.IsClass && propertyType != typeof(string) && !propertyType.IsGenericType)
            {
                ValidateKnownKeys(child, propertyType, errors);
            }
        }
    }

    private static Dictionary<string, ClusterProtocol> ValidateClusters(IConfigurationSection section, List<string> errors)
    {
        var clusters = new Dictionary<string, ClusterProtocol>(StringComparer.OrdinalIgnoreCase);
        foreach (var cluster in section.GetChildren())
        {
            var key = cluster.Path;
            var protocolText = cluster[$"Metadata:{MetadataKeys.Protocol}"];
            var protocol = ClusterProtocol.Http;
            if (!string.IsNullOrEmpty(protocolText) && !TryParseProtocol(protocolText, out protocol))
            {
                errors.Add($"{key}:Metadata:{MetadataKeys.Protocol}: '{protocolText}' is not a protocol (Http, Dicom, Mllp).");
            }

            clusters[cluster.Key] = protocol;

            foreach (var destination in cluster.GetSection("Destinations").GetChildren())
            {
                var address = destination["Address"];
                if (string.IsNullOrWhiteSpace(address))
                {
                    errors.Add($"{destination.Path}:Address: required.");
                }
                else if (protocol == ClusterProtocol.Http)
                {
                    if (!IsHttpAddress(address))
                    {
                        errors.Add($"{destination.Path}:Address: '{address}' is not an absolute http:// or https:// address.");
                    }
                }
                else if (!TcpAddress.TryParse(address, out _))
                {
                    errors.Add($"{destination.Path}:Address: '{address}' is not a tcp://host:port (or tls://host:port) address (port 1-65535), as a {protocol} cluster needs.");
                }

                // The HTTP probe's own address, when a destination has one.
                var health = destination["Health"];
                if (protocol == ClusterProtocol.Http && !string.IsNullOrEmpty(health) && !IsHttpAddress(health))
                {
                    errors.Add($"{destination.Path}:Health: '{health}' is not an absolute http:// or https:// address.");
                }

                ValidatePositiveInteger(destination.GetSection("Metadata"), MetadataKeys.Weight, errors);
                ValidatePositiveInteger(destination.GetSection("Metadata"), MetadataKeys.MaxConcurrent, errors);
                ValidateBoolean(destination.GetSection("Metadata"), MetadataKeys.Drain, errors);
                ValidateBoolean(destination.GetSection("Metadata"), MetadataKeys.Backup, errors);
                var ae = destination[$"Metadata:{MetadataKeys.AeTitle}"];
                if (ae is not null && !Dicom.AeTitle.IsValid(ae))
                {
                    errors.Add($"{destination.Path}:Metadata:{MetadataKeys.AeTitle}: '{ae}' is not an AE title (1-16 characters, no backslash or control characters).");
                }
            }

            NodeTls.Validate(cluster, protocol, errors, AppContext.BaseDirectory);
            var policy = cluster["LoadBalancingPolicy"];
            if (!string.IsNullOrEmpty(policy) && !s_loadBalancingPolicies.Contains(policy, StringComparer.OrdinalIgnoreCase))
            {
                errors.Add($"{key}:LoadBalancingPolicy: '{policy}' is unknown ({string.Join(", ", s_loadBalancingPolicies)}).");
            }

            var available = cluster["HealthCheck:AvailableDestinationsPolicy"];
            if (!string.IsNullOrEmpty(available) && !s_availableDestinationsPolicies.Contains(available, StringComparer.OrdinalIgnoreCase))
            {
                errors.Add($"{key}:HealthCheck:AvailableDestinationsPolicy: '{available}' is unknown ({string.Join(", ", s_availableDestinationsPolicies)}).");
            }

            var active = cluster.GetSection("HealthCheck:Active");
            ValidateBoolean(active, "Enabled", errors);
            ValidatePositiveTime(active, "Interval", errors);
            ValidatePositiveTime(active, "Timeout", errors);
            var activePolicy = active["Policy"];
            if (!string.IsNullOrEmpty(activePolicy) && !string.Equals(activePolicy, "ConsecutiveFailures", StringComparison.OrdinalIgnoreCase))
            {
                errors.Add($"{active.Path}:Policy: '{activePolicy}' is unknown (ConsecutiveFailures).");
            }

            var query = active["Query"];
            if (!string.IsNullOrEmpty(query) && !query.StartsWith('?'))
            {
                errors.Add($"{active.Path}:Query: '{query}' must start with '?'.");
            }

            // The HTTP probe asks for {Health ?? Address}{Path}{Query}: "dicom-web/studies" would glue the path to the
            // port or host and take every destination down at the next probe.
            var path = active["Path"];
            if (!string.IsNullOrEmpty(path) && !path.StartsWith('/'))
            {
                errors.Add($"{active.Path}:Path: '{path}' must start with '/'.");
            }

            var passive = cluster.GetSection("HealthCheck:Passive");
            ValidateBoolean(passive, "Enabled", errors);
            ValidatePositiveTime(passive, "ReactivationPeriod", errors);
            ValidatePositiveTime(cluster.GetSection("HttpRequest"), "ActivityTimeout", errors);
            ValidatePositiveInteger(cluster.GetSection("Metadata"), MetadataKeys.ConsecutiveFailuresThreshold, errors);
            ValidatePositiveInteger(cluster.GetSection("Metadata"), MetadataKeys.ConsecutiveSuccessesThreshold, errors);

            var metadata = cluster.GetSection("Metadata");
            ValidatePositiveTime(metadata, MetadataKeys.SlowStart, errors);
            ValidatePositiveTime(metadata, MetadataKeys.QueueTimeout, errors);
            if (protocol == ClusterProtocol.Mllp && !string.IsNullOrEmpty(metadata[MetadataKeys.QueueTimeout]))
            {
                errors.Add($"{metadata.Path}:{MetadataKeys.QueueTimeout}: HL7 clusters do not queue for a place (a message to a full cluster gets an AR/CR NAK at once, which the sender retries).");
            }
            if (protocol == ClusterProtocol.Http)
            {
                ValidateIntegerRange(metadata, MetadataKeys.RetryMaxAttempts, 1, HttpRetryStep.MaxMaxAttempts, errors);
                var retryOn = metadata[MetadataKeys.RetryOn];
                if (!string.IsNullOrEmpty(retryOn) && !string.Equals(retryOn, HttpRetryStep.OnConnect, StringComparison.OrdinalIgnoreCase)
                    && !string.Equals(retryOn, HttpRetryStep.OnBeforeResponse, StringComparison.OrdinalIgnoreCase))
                {
                    errors.Add($"{metadata.Path}:{MetadataKeys.RetryOn}: '{retryOn}' is unknown ({HttpRetryStep.OnConnect}, {HttpRetryStep.OnBeforeResponse}).");
                }

                var expect = metadata[MetadataKeys.ExpectContinue];
                if (!ExpectContinue.IsValid(expect))
                {
                    errors.Add($"{metadata.Path}:{MetadataKeys.ExpectContinue}: '{expect}' is unknown ({ExpectContinue.Large}, {ExpectContinue.Always}, {ExpectContinue.Never}).");
                }

                ValidatePositiveTime(metadata, MetadataKeys.ExpectContinueTimeout, errors);

                ValidateStatusCodes(metadata, MetadataKeys.RetryStatusCodes, "a request can be retried after", errors);

                // Passive health's failure share (TransportFailureRatePolicy); YARP's own policy read a bad value as its default.
                var rateLimitKey = Yarp.ReverseProxy.Health.TransportFailureRateHealthPolicyOptions.FailureRateLimitMetadataName;
                var rateLimit = metadata[rateLimitKey];
                if (!string.IsNullOrEmpty(rateLimit)
                    && (!double.TryParse(rateLimit, NumberStyles.Float, CultureInfo.InvariantCulture, out var limit) || !(limit is > 0 and <= 1)))
                {
                    errors.Add($"{metadata.Path}:{rateLimitKey}: '{rateLimit}' must be a number above 0 and at most 1 (the share of failed requests that takes a destination out).");
                }

                ValidateStatusCodes(metadata, MetadataKeys.PassiveFailureStatusCodes, "passive health can count", errors);
            }
            else
            {
                foreach (var retryKey in (string[])[MetadataKeys.RetryMaxAttempts, MetadataKeys.RetryOn, MetadataKeys.RetryStatusCodes])
                {
                    if (!string.IsNullOrEmpty(metadata[retryKey]))
                    {
                        errors.Add($"{metadata.Path}:{retryKey}: applies to HTTP clusters only; a {protocol} cluster's attempts are ImagingProxy:{protocol}:MaxAttempts.");
                    }
                }

                foreach (var expectKey in (string[])[MetadataKeys.ExpectContinue, MetadataKeys.ExpectContinueTimeout, MetadataKeys.PassiveFailureStatusCodes])
                {
                    if (!string.IsNullOrEmpty(metadata[expectKey]))
                    {
                        errors.Add($"{metadata.Path}:{expectKey}: applies to HTTP clusters only.");
                    }
                }
            }

            ValidateBoolean(metadata, MetadataKeys.RewriteCalledAeTitle, errors);
            ValidateBoolean(metadata, MetadataKeys.MllpProbeAcceptError, errors);
            ValidateBoolean(metadata, MetadataKeys.MllpRetryOnReject, errors);
            if (protocol != ClusterProtocol.Mllp && !string.IsNullOrEmpty(metadata[MetadataKeys.MllpRetryOnReject]))
            {
                errors.Add($"{metadata.Path}:{MetadataKeys.MllpRetryOnReject}: applies to MLLP clusters only.");
            }
            var probe = metadata[MetadataKeys.MllpProbe];
            if (!string.IsNullOrEmpty(probe) && probe is not ("Connect" or "Message"))
            {
                errors.Add($"{metadata.Path}:{MetadataKeys.MllpProbe}: '{probe}' is unknown (Connect, Message).");
            }
            else if (probe == "Message" && string.IsNullOrWhiteSpace(metadata[MetadataKeys.MllpProbeMessage]))
            {
                errors.Add($"{metadata.Path}:{MetadataKeys.MllpProbeMessage}: required with the Message probe (an HL7 message agreed with the receiving site).");
            }
            else if (probe == "Message")
            {
                ValidateProbeMessage(metadata, errors);
            }

            if (string.Equals(metadata[MetadataKeys.RewriteCalledAeTitle], "true", StringComparison.OrdinalIgnoreCase))
            {
                foreach (var destination in cluster.GetSection("Destinations").GetChildren())
                {
                    if (string.IsNullOrEmpty(destination[$"Metadata:{MetadataKeys.AeTitle}"]))
                    {
                        errors.Add($"{destination.Path}:Metadata:{MetadataKeys.AeTitle}: required because the cluster rewrites the Called AE title.");
                    }
                }
            }

            ValidateYarpClusterValues(cluster, errors);
            var affinity = cluster.GetSection("SessionAffinity");
            if (string.Equals(affinity["Enabled"], "true", StringComparison.OrdinalIgnoreCase) && string.IsNullOrEmpty(affinity["AffinityKeyName"]))
            {
                errors.Add($"{affinity.Path}:AffinityKeyName: required when session affinity is enabled.");
            }
        }

        return clusters;
    }

    /// <summary>
    /// The Message probe waits for the node's accept acknowledgment: its message must have a readable MSH (MSH-9 and
    /// MSH-10, as a node needs to answer it) and must not ask for no accept acknowledgment (MSH-15 <c>NE</c>), which a
    /// receiver honours by answering nothing, so that every probe would time out and every node be taken out.
    /// </summary>
    private static void ValidateProbeMessage(IConfigurationSection metadata, List<string> errors)
    {
        var message = Mllp.MllpProber.ToSegments(metadata[MetadataKeys.MllpProbeMessage]!);
        var status = Mllp.Hl7HeaderReader.TryRead(message, Mllp.MllpConstants.DefaultMaxHeaderSegmentLength, out var header);
        if (status != Mllp.Hl7ReadStatus.Success)
        {
            errors.Add($"{metadata.Path}:{MetadataKeys.MllpProbeMessage}: not an HL7 message with a readable MSH, MSH-9 and MSH-10 ({status}).");
        }
        else if (header.IsAcceptAcknowledgmentNever)
        {
            errors.Add($"{metadata.Path}:{MetadataKeys.MllpProbeMessage}: MSH-15 is NE (no accept acknowledgment): a receiver answers nothing and every probe would time out; use AL or leave MSH-15 empty.");
        }
    }

    private static void ValidateRoutes(IConfigurationSection section, Dictionary<string, ClusterProtocol> clusters, HashSet<string> endpoints, List<string> errors)
    {
        foreach (var route in section.GetChildren())
        {
            var clusterId = route["ClusterId"];
            if (string.IsNullOrEmpty(clusterId))
            {
                errors.Add($"{route.Path}:ClusterId: required.");
            }
            else if (!clusters.TryGetValue(clusterId, out var protocol))
            {
                errors.Add($"{route.Path}:ClusterId: unknown cluster '{clusterId}'.");
            }
            else if (protocol != ClusterProtocol.Http)
            {
                errors.Add($"{route.Path}:ClusterId: cluster '{clusterId}' is a {protocol} cluster; HTTP routes need an Http cluster.");
            }

            ValidateList(route, "Match:Methods", errors);
            ValidateList(route, "Match:Hosts", errors);
            if (string.IsNullOrEmpty(route["Match:Path"]) && !route.GetSection("Match:Hosts").GetChildren().Any())
            {
                errors.Add($"{route.Path}:Match: a route needs Match:Path or Match:Hosts.");
            }

            ValidatePositiveTime(route, "Timeout", errors);
            ValidateWholeNumber(route, "Order", errors);
            ValidateWholeNumber(route, "MaxRequestBodySize", errors);
            foreach (var (list, mode) in (ReadOnlySpan<(string, Type)>)[("Headers", typeof(Yarp.ReverseProxy.Configuration.HeaderMatchMode)), ("QueryParameters", typeof(Yarp.ReverseProxy.Configuration.QueryParameterMatchMode))])
            {
                foreach (var condition in route.GetSection($"Match:{list}").GetChildren())
                {
                    ValidateEnum(condition, "Mode", mode, errors);
                    ValidateBoolean(condition, "IsCaseSensitive", errors);
                }
            }

            var listener = route[$"Metadata:{MetadataKeys.Listener}"];
            if (!string.IsNullOrEmpty(listener) && !endpoints.Contains(listener))
            {
                errors.Add($"{route.Path}:Metadata:{MetadataKeys.Listener}: unknown endpoint '{listener}' (Kestrel:Endpoints; or turned off with Enabled false).");
            }
            else if (string.IsNullOrEmpty(listener) && !endpoints.Contains(EndpointNames.Viewers))
            {
                errors.Add($"{route.Path}: serves the {EndpointNames.Viewers} endpoint, which is not configured or is turned off (Kestrel:Endpoints:{EndpointNames.Viewers}); set Metadata:{MetadataKeys.Listener} to another endpoint.");
            }
        }
    }

    private static HashSet<string> ValidateKestrelEndpoints(IConfigurationSection kestrel, List<(string, IPAddress?, int)> ports, List<string> errors)
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        var hasDefaultCertificate = !string.IsNullOrEmpty(kestrel["Certificates:Default:Path"]);
        ValidateCertificate(kestrel.GetSection("Certificates:Default"), AppContext.BaseDirectory, errors);
        ValidateTlsSettings(kestrel.GetSection("EndpointDefaults"), errors);
        foreach (var endpoint in kestrel.GetSection("Endpoints").GetChildren())
        {
            if (ConfigurationGate.IsTurnedOff(endpoint))
            {
                continue; // not bound, nothing of it is read (ConfigurationGate leaves it out)
            }

            ValidateBoolean(endpoint, "Enabled", errors);
            ValidateTlsSettings(endpoint, errors);
            names.Add(endpoint.Key);
            var url = endpoint["Url"];
            if (string.IsNullOrWhiteSpace(url))
            {
                errors.Add($"{endpoint.Path}:Url: required.");
                continue;
            }

            if (!TryParseEndpointUrl(url, out var scheme, out var address, out var port))
            {
                errors.Add($"{endpoint.Path}:Url: '{url}' is not an http:// or https:// address with a port.");
                continue;
            }

            ports.Add((endpoint.Path, address, port));
            var certificate = endpoint.GetSection("Certificate");
            if (scheme == Uri.UriSchemeHttps && string.IsNullOrEmpty(certificate["Path"]) && string.IsNullOrEmpty(certificate["Subject"]) && !hasDefaultCertificate)
            {
                errors.Add($"{endpoint.Path}:Certificate: an https endpoint needs a certificate (Path + KeyPath for PEM, Path + Password for PFX).");
            }

            ValidateCertificate(certificate, AppContext.BaseDirectory, errors);
        }

        return names;
    }

    /// <summary>
    /// <c>ClientCertificateMode</c> and <c>SslProtocols</c> of <c>Kestrel:EndpointDefaults</c> (which the DICOM and MLLP
    /// TLS listeners take too) or of one endpoint. Kestrel skips a value it cannot read without a word, so a misspelt
    /// <c>RequireCertficate</c> let every client in without a certificate, a <c>Tls1.3</c> or a single
    /// <c>"SslProtocols": "Tls13"</c> (not a list) left the system's protocols, TLS 1.2 included: each is an error here.
    /// </summary>
    private static void ValidateTlsSettings(IConfigurationSection section, List<string> errors)
    {
        ValidateEnum(section, "ClientCertificateMode", typeof(Microsoft.AspNetCore.Server.Kestrel.Https.ClientCertificateMode), errors);
        var protocols = section.GetSection("SslProtocols");
        if (protocols.Value is not null)
        {
            errors.Add($"{protocols.Path}: a list is expected ([ \"{protocols.Value}\" ]), not a single value.");
        }

        foreach (var protocol in protocols.GetChildren())
        {
            if (protocol.Value is null || !IsEnumName(protocol.Value, typeof(System.Security.Authentication.SslProtocols)))
            {
                errors.Add($"{protocol.Path}: '{protocol.Value}' is not one of {string.Join(", ", Enum.GetNames<System.Security.Authentication.SslProtocols>())}.");
            }
        }
    }

    /// <summary>
    /// A server certificate is loaded as its reader will load it, so that a wrong password, a PEM without its key, a key
    /// that does not match or an unreadable file is a configuration error naming its key, not an exception when the
    /// server starts. Relative paths are resolved as the readers do, Kestrel's endpoints and the DICOM and MLLP
    /// listeners alike: from the content root (<paramref name="root"/>, the host's directory).
    /// </summary>
    private static void ValidateCertificate(IConfigurationSection certificate, string root, List<string> errors)
    {
        var path = Resolve(certificate["Path"], root);
        var keyPath = Resolve(certificate["KeyPath"], root);
        var found = true;
        foreach (var (key, file) in (ReadOnlySpan<(string, string?)>)[("Path", path), ("KeyPath", keyPath)])
        {
            if (file is not null && !File.Exists(file))
            {
                errors.Add($"{certificate.Path}:{key}: file '{file}' does not exist.");
                found = false;
            }
        }

        if (path is null || !found)
        {
            return;
        }

        var password = certificate["Password"];
        try
        {
            using var loaded = ServerCertificateFile.Load(path, keyPath, password);
            if (!loaded.HasPrivateKey)
            {
                errors.Add($"{certificate.Path}:Path: '{path}' has no private key (a PFX with its key, or a PEM certificate with KeyPath).");
            }
        }
        catch (Exception ex) when (ex is System.Security.Cryptography.CryptographicException or IOException or UnauthorizedAccessException or ArgumentException)
        {
            var expected = keyPath is null ? "a PFX with its Password (for a PEM certificate, give KeyPath)" : "a PEM certificate and its matching private key in KeyPath";
            errors.Add($"{certificate.Path}: the certificate could not be loaded as {expected}: {ex.Message}");
        }
    }

    private static string? Resolve(string? path, string root)
        => string.IsNullOrEmpty(path) ? null : ServerCertificateFile.FullPath(path, root);

    private static HashSet<string> ValidateListeners(IConfigurationSection section, List<(string, IPAddress?, int)> ports, bool dicom, List<string> errors)
    {
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var listener in section.GetChildren())
        {
            names.Add(listener.Key);
            if (dicom)
            {
                ValidateBoolean(listener, "EarlyConnect", errors);
                ValidatePositiveInteger(listener, "MaxAssociations", errors);
                if (listener["MaxConnections"] is not null)
                {
                    errors.Add($"{listener.Path}:MaxConnections: a DICOM listener's limit is MaxAssociations (answered with A-ASSOCIATE-RJ).");
                }
            }
            else
            {
                ValidatePositiveInteger(listener, "MaxConnections", errors);
                if (listener["EarlyConnect"] is not null)
                {
                    errors.Add($"{listener.Path}:EarlyConnect: only DICOM listeners connect early (an MLLP node is chosen per message).");
                }

                if (listener["MaxAssociations"] is not null)
                {
                    errors.Add($"{listener.Path}:MaxAssociations: only DICOM listeners count associations (an MLLP listener's limit is MaxConnections).");
                }
            }

            var addressText = listener["Address"];
            IPAddress? address = null;
            if (!string.IsNullOrEmpty(addressText) && !TryParseListenAddress(addressText, out address))
            {
                errors.Add($"{listener.Path}:Address: '{addressText}' is not an IP address (or 'localhost').");
            }

            var portText = listener["Port"];
            if (string.IsNullOrEmpty(portText))
            {
                errors.Add($"{listener.Path}:Port: required.");
            }
            else if (!int.TryParse(portText, NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port > 65535)
            {
                errors.Add($"{listener.Path}:Port: '{portText}' is not a TCP port (0-65535).");
            }
            else
            {
                ports.Add((listener.Path, address, port));
            }

            var tls = listener.GetSection("Tls");
            if (tls.Exists())
            {
                if (string.IsNullOrEmpty(tls["Path"]))
                {
                    errors.Add($"{tls.Path}:Path: required (a PEM certificate with KeyPath, or a PFX).");
                }

                ValidateCertificate(tls, AppContext.BaseDirectory, errors);
            }
        }

        return names;
    }

    private static void ValidateDicom(IConfigurationSection dicom, Dictionary<string, ClusterProtocol> clusters, HashSet<string> listeners, List<string> errors)
    {
        ValidatePositiveTime(dicom, "ArtimTimeout", errors);
        ValidatePositiveTime(dicom, "IdleTimeout", errors);
        ValidatePositiveTime(dicom, "ConnectTimeout", errors);
        ValidateIntegerRange(dicom, "MaxAttempts", 1, 32, errors);
        var maxPdu = dicom["MaxAssociatePduLength"];
        if (!string.IsNullOrEmpty(maxPdu) && (!int.TryParse(maxPdu, NumberStyles.None, CultureInfo.InvariantCulture, out var max) || max < 1024 || max > 16 * 1024 * 1024))
        {
            errors.Add($"{dicom.Path}:MaxAssociatePduLength: '{maxPdu}' must be a byte count between 1024 and 16777216.");
        }

        var probeAe = dicom["ProbeCallingAeTitle"];
        if (probeAe is not null && !Dicom.AeTitle.IsValid(probeAe))
        {
            errors.Add($"{dicom.Path}:ProbeCallingAeTitle: '{probeAe}' is not an AE title.");
        }

        foreach (var route in dicom.GetSection("Routes").GetChildren())
        {
            var called = route["CalledAeTitle"];
            if (string.IsNullOrEmpty(called))
            {
                errors.Add($"{route.Path}:CalledAeTitle: required (an AE title or '*').");
            }
            else if (called != "*" && !Dicom.AeTitle.IsValid(called))
            {
                errors.Add($"{route.Path}:CalledAeTitle: '{called}' is not an AE title (1-16 characters, no backslash or control characters) or '*'.");
            }

            ValidateList(route, "CallingAeTitles", errors);
            foreach (var calling in route.GetSection("CallingAeTitles").GetChildren())
            {
                if (calling.Value is null || !Dicom.AeTitle.IsValid(calling.Value))
                {
                    errors.Add($"{calling.Path}: '{calling.Value}' is not an AE title.");
                }
            }

            ValidateRouteListeners(route, listeners, errors);
            ValidateRouteCluster(route, clusters, ClusterProtocol.Dicom, errors);
        }
    }

    private static void ValidateMllp(IConfigurationSection mllp, Dictionary<string, ClusterProtocol> clusters, HashSet<string> listeners, List<string> errors)
    {
        ValidatePositiveTime(mllp, "AckTimeout", errors);
        ValidatePositiveTime(mllp, "ConnectTimeout", errors);
        ValidatePositiveTime(mllp, "DeliveryTimeout", errors);
        ValidatePositiveTime(mllp, "IdleTimeout", errors);
        ValidatePositiveTime(mllp, "PoolIdleTimeout", errors);
        ValidateIntegerRange(mllp, "MaxAttempts", 1, 10, errors);
        var maxFrame = mllp["MaxFrameSize"];
        if (!string.IsNullOrEmpty(maxFrame) && (!int.TryParse(maxFrame, NumberStyles.None, CultureInfo.InvariantCulture, out var max) || max < 256))
        {
            errors.Add($"{mllp.Path}:MaxFrameSize: '{maxFrame}' must be a byte count of at least 256.");
        }

        foreach (var route in mllp.GetSection("Routes").GetChildren())
        {
            ValidateHl7Conditions(route, errors);

            var order = route["Order"];
            if (!string.IsNullOrEmpty(order) && !int.TryParse(order, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
            {
                errors.Add($"{route.Path}:Order: '{order}' is not a whole number.");
            }

            ValidateRouteListeners(route, listeners, errors);
            ValidateRouteCluster(route, clusters, ClusterProtocol.Mllp, errors);
        }
    }

    private static void ValidateXds(IConfigurationSection xds, Dictionary<string, ClusterProtocol> clusters, HashSet<string> endpoints, List<string> errors)
    {
        foreach (var key in new[] { "RegistryCluster", "RepositoryCluster" })
        {
            var id = xds[key];
            if (string.IsNullOrEmpty(id))
            {
                continue;
            }

            if (!endpoints.Contains(EndpointNames.Xds))
            {
                errors.Add($"{xds.Path}:{key}: the {EndpointNames.Xds} endpoint that serves XDS is not configured or is turned off (Kestrel:Endpoints:{EndpointNames.Xds}).");
            }

            if (!clusters.TryGetValue(id, out var protocol))
            {
                errors.Add($"{xds.Path}:{key}: unknown cluster '{id}'.");
            }
            else if (protocol != ClusterProtocol.Http)
            {
                errors.Add($"{xds.Path}:{key}: cluster '{id}' is a {protocol} cluster; XDS needs an Http cluster.");
            }
        }
    }

    private static void ValidateRouteCluster(IConfigurationSection route, Dictionary<string, ClusterProtocol> clusters, ClusterProtocol expected, List<string> errors)
    {
        var id = route["Cluster"];
        if (string.IsNullOrEmpty(id))
        {
            errors.Add($"{route.Path}:Cluster: required.");
        }
        else if (!clusters.TryGetValue(id, out var protocol))
        {
            errors.Add($"{route.Path}:Cluster: unknown cluster '{id}'.");
        }
        else if (protocol != expected)
        {
            errors.Add($"{route.Path}:Cluster: cluster '{id}' is a {protocol} cluster; this route needs a {expected} cluster (Metadata:Protocol = {expected}).");
        }
    }

    private static void ValidateRouteListeners(IConfigurationSection route, HashSet<string> listeners, List<string> errors)
    {
        ValidateList(route, "Listeners", errors);
        foreach (var listener in route.GetSection("Listeners").GetChildren())
        {
            if (listener.Value is null || !listeners.Contains(listener.Value))
            {
                errors.Add($"{listener.Path}: unknown listener '{listener.Value}'.");
            }
        }
    }

    private static void ValidatePortConflicts(List<(string Key, IPAddress? Address, int Port)> ports, List<string> errors)
    {
        for (var i = 0; i < ports.Count; i++)
        {
            for (var j = i + 1; j < ports.Count; j++)
            {
                var (a, b) = (ports[i], ports[j]);
                if (a.Port == 0 || a.Port != b.Port)
                {
                    continue;
                }

                var overlap = a.Address is null || b.Address is null || IsAny(a.Address) || IsAny(b.Address) || a.Address.Equals(b.Address);
                if (overlap)
                {
                    errors.Add($"{b.Key}: port {b.Port} is already used by {a.Key}.");
                }
            }
        }

        static bool IsAny(IPAddress address) => address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any);
    }

    private static void ValidatePositiveTime(IConfigurationSection section, string key, List<string> errors)
    {
        var text = section[key];
        if (string.IsNullOrEmpty(text))
        {
            return;
        }

        if (!TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out var value))
        {
            errors.Add($"{section.Path}:{key}: '{text}' is not a time span (hh:mm:ss).");
        }
        else if (BareNumber(text) is { } bare)
        {
            errors.Add($"{section.Path}:{key}: '{text}' is not a time span (hh:mm:ss, or d.hh:mm:ss); {bare}.");
        }
        else if (value <= TimeSpan.Zero)
        {
            errors.Add($"{section.Path}:{key}: must be positive, got '{text}'.");
        }
        else if (value > MaxTime)
        {
            // Every one of these times arms a timer, and .NET's timers wait at most ~49.7 days: a longer one would throw
            // where it is used (each association, each probe round) instead of here.
            errors.Add($"{section.Path}:{key}: must be at most {MaxTime:c} (the longest a timer can wait), got '{text}'.");
        }
    }

    /// <summary>
    /// Why a time written without ':' is refused wherever a time is read, or null for one written with it: TimeSpan reads
    /// "30" as 30 days, so "AckTimeout": 30, meant as seconds, would wait a month for each ACK.
    /// </summary>
    internal static string? BareNumber(string text)
        => text.Contains(':', StringComparison.Ordinal) ? null : $"a bare number would be read as {text} days";

    private static bool IsHttpAddress(string address)
        => Uri.TryCreate(address, UriKind.Absolute, out var uri) && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps);

    /// <summary>The longest time a setting may have (.NET timers wait at most 4,294,967,294 ms, ~49.7 days).</summary>
    internal static readonly TimeSpan MaxTime = TimeSpan.FromDays(49);

    private static void ValidatePositiveInteger(IConfigurationSection section, string key, List<string> errors)
    {
        var text = section[key];
        if (!string.IsNullOrEmpty(text) && (!int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var value) || value < 1))
        {
            errors.Add($"{section.Path}:{key}: '{text}' must be a positive whole number.");
        }
    }

    private static void ValidateIntegerRange(IConfigurationSection section, string key, int min, int max, List<string> errors)
    {
        var text = section[key];
        if (!string.IsNullOrEmpty(text) && (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out var value) || value < min || value > max))
        {
            errors.Add($"{section.Path}:{key}: '{text}' must be a whole number from {min} to {max}.");
        }
    }

    /// <summary>A list of status codes (<see cref="Health.FailureStatusCodes"/>); <paramref name="use"/> ends the error's "is not a status ...".</summary>
    private static void ValidateStatusCodes(IConfigurationSection section, string key, string use, List<string> errors)
    {
        if (!Health.FailureStatusCodes.TryParse(section[key], out _, out var invalid))
        {
            errors.Add($"{section.Path}:{key}: '{invalid}' is not a status {use} (429, 500-599, or {Health.FailureStatusCodes.AllServerErrors} for all of 500-599).");
        }
    }

    /// <summary>
    /// The cluster values YARP's configuration reader converts itself (bool, int, enum, version, URI): YARP stops at the
    /// first it cannot convert and names no key ("ReverseProxy: The input string 'x' was not in a correct format."), so
    /// they are checked here first, each named. Times are checked with the others (<see cref="ValidatePositiveTime"/>).
    /// </summary>
    private static void ValidateYarpClusterValues(IConfigurationSection cluster, List<string> errors)
    {
        var affinity = cluster.GetSection("SessionAffinity");
        ValidateBoolean(affinity, "Enabled", errors);
        var cookie = affinity.GetSection("Cookie");
        ValidateBoolean(cookie, "HttpOnly", errors);
        ValidateBoolean(cookie, "IsEssential", errors);
        ValidateEnum(cookie, "SecurePolicy", typeof(Microsoft.AspNetCore.Http.CookieSecurePolicy), errors);
        ValidateEnum(cookie, "SameSite", typeof(Microsoft.AspNetCore.Http.SameSiteMode), errors);
        ValidatePositiveTime(cookie, "Expiration", errors);
        ValidatePositiveTime(cookie, "MaxAge", errors);

        var client = cluster.GetSection("HttpClient");
        ValidatePositiveInteger(client, "MaxConnectionsPerServer", errors);
        ValidateBoolean(client, "DangerousAcceptAnyServerCertificate", errors);
        ValidateBoolean(client, "EnableMultipleHttp2Connections", errors);
        foreach (var protocol in client.GetSection("SslProtocols").GetChildren())
        {
            if (!string.IsNullOrEmpty(protocol.Value) && !IsEnumName(protocol.Value, typeof(System.Security.Authentication.SslProtocols)))
            {
                errors.Add($"{protocol.Path}: '{protocol.Value}' is not one of {string.Join(", ", Enum.GetNames<System.Security.Authentication.SslProtocols>())}.");
            }
        }

        var proxy = client.GetSection("WebProxy");
        var proxyAddress = proxy["Address"];
        if (!string.IsNullOrEmpty(proxyAddress) && !Uri.TryCreate(proxyAddress, UriKind.Absolute, out _))
        {
            errors.Add($"{proxy.Path}:Address: '{proxyAddress}' is not an absolute URI.");
        }

        ValidateBoolean(proxy, "BypassOnLocal", errors);
        ValidateBoolean(proxy, "UseDefaultCredentials", errors);

        var request = cluster.GetSection("HttpRequest");
        var version = request["Version"];
        if (!string.IsNullOrEmpty(version) && !Version.TryParse(version.Contains('.', StringComparison.Ordinal) ? version : version + ".0", out _))
        {
            errors.Add($"{request.Path}:Version: '{version}' is not an HTTP version (1.0, 1.1, 2, 3).");
        }

        ValidateEnum(request, "VersionPolicy", typeof(System.Net.Http.HttpVersionPolicy), errors);
        ValidateBoolean(request, "AllowResponseBuffering", errors);
    }

    private static void ValidateEnum(IConfigurationSection section, string key, Type type, List<string> errors)
    {
        var text = section[key];
        if (!string.IsNullOrEmpty(text) && !IsEnumName(text, type))
        {
            errors.Add($"{section.Path}:{key}: '{text}' is not one of {string.Join(", ", Enum.GetNames(type))}.");
        }
    }

    /// <summary>A name of <paramref name="type"/>, any case, as YARP reads it (<c>Enum.Parse</c>); not a number.</summary>
    private static bool IsEnumName(string text, Type type)
        => Enum.TryParse(type, text, ignoreCase: true, out _) && !text.TrimStart().StartsWith('-') && !char.IsDigit(text.TrimStart().FirstOrDefault());

    private static void ValidateWholeNumber(IConfigurationSection section, string key, List<string> errors)
    {
        var text = section[key];
        if (!string.IsNullOrEmpty(text) && !long.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out _))
        {
            errors.Add($"{section.Path}:{key}: '{text}' is not a whole number.");
        }
    }

    /// <summary>
    /// A key read as a list (<c>CallingAeTitles</c>, a route's <c>Listeners</c>, YARP's <c>Match:Methods</c> ...) that holds a
    /// single value instead: it has no elements, so the binder and YARP read it as no list at all, which for a
    /// restriction means none ("CallingAeTitles": "CT1" let every calling AE title use the route).
    /// </summary>
    private static void ValidateList(IConfigurationSection section, string key, List<string> errors)
    {
        var list = section.GetSection(key);
        if (list.Value is not null)
        {
            errors.Add($"{list.Path}: '{list.Value}' is a single value where a list is expected (in JSON [\"{list.Value}\"]; as an environment variable or command-line key, {list.Path}:0).");
        }
    }

    private static void ValidateBoolean(IConfigurationSection section, string key, List<string> errors)
    {
        var text = section[key];
        if (!string.IsNullOrEmpty(text) && !bool.TryParse(text, out _))
        {
            errors.Add($"{section.Path}:{key}: '{text}' is not true or false.");
        }
    }

    internal static bool TryParseProtocol(string? text, out ClusterProtocol protocol)
    {
        if (string.IsNullOrEmpty(text))
        {
            protocol = ClusterProtocol.Http;
            return true;
        }

        return Enum.TryParse(text, ignoreCase: true, out protocol) && Enum.IsDefined(protocol) && !int.TryParse(text, out _);
    }

    internal static bool TryParseListenAddress(string text, out IPAddress? address)
    {
        if (string.Equals(text, "localhost", StringComparison.OrdinalIgnoreCase))
        {
            address = IPAddress.Loopback;
            return true;
        }

        if (text is "*" or "+")
        {
            address = IPAddress.Any;
            return true;
        }

        var ok = IPAddress.TryParse(text, out var parsed);
        address = parsed;
        return ok;
    }

    internal static bool TryParseEndpointUrl(string url, out string scheme, out IPAddress? address, out int port)
    {
        scheme = "";
        address = null;
        port = 0;
        var text = url.Replace("://*", "://0.0.0.0", StringComparison.Ordinal).Replace("://+", "://0.0.0.0", StringComparison.Ordinal);
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
        {
            return false;
        }

        scheme = uri.Scheme;
        port = uri.Port;
        address = uri.IsLoopback ? IPAddress.Loopback : IPAddress.TryParse(uri.Host.Trim('[', ']'), out var ip) ? ip : IPAddress.Any;
        return true;
    }

    /// <summary>
    /// An MLLP route's MSH conditions, each as the route table reads it (<see cref="Mllp.Hl7Pattern"/>): the table would
    /// otherwise leave out a route it cannot read, and its messages would fall to a later catch-all.
    /// </summary>
    private static void ValidateHl7Conditions(IConfigurationSection route, List<string> errors)
    {
        foreach (var key in (string[])["MessageType", "SendingApplication", "SendingFacility", "ReceivingApplication", "ReceivingFacility"])
        {
            var value = route[key];
            if (value is null)
            {
                continue;
            }

            string? error;
            var valid = key switch
            {
                "MessageType" => Mllp.Hl7Pattern.TryCreate(value, null, null, null, null, out _, out error),
                "SendingApplication" => Mllp.Hl7Pattern.TryCreate(null, value, null, null, null, out _, out error),
                "SendingFacility" => Mllp.Hl7Pattern.TryCreate(null, null, value, null, null, out _, out error),
                "ReceivingApplication" => Mllp.Hl7Pattern.TryCreate(null, null, null, value, null, out _, out error),
                _ => Mllp.Hl7Pattern.TryCreate(null, null, null, null, value, out _, out error),
            };
            if (!valid)
            {
                errors.Add($"{route.Path}:{key}: {error} Examples: 'ADT^*', 'ORM^O01', 'ADT^A01^ADT_A01' or '*' for MessageType; 'LAB' or '*' for the others.");
            }
        }
    }
}
