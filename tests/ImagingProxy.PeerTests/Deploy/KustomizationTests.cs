using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using ImagingProxy.Configuration;
using ImagingProxy.PeerTests.Peers;
using ImagingProxy.Testing;
using Microsoft.Extensions.Configuration;

namespace ImagingProxy.PeerTests.Deploy;

/// <summary>
/// deploy/kubernetes rendered by the real kubectl (peer: Debian's kubernetes-client) and checked against the
/// proxy itself: the ports its configuration binds, the admin paths it serves, the configuration it accepts.
/// </summary>
public sealed class KustomizationTests(RenderedKustomization rendered) : IClassFixture<RenderedKustomization>
{
    private const string ContainerName = "imagingproxy";

    private JsonElement Deployment => rendered.OnlyOne("Deployment");

    private JsonElement PodSpec => Deployment.At("spec", "template", "spec");

    private JsonElement Container
    {
        get
        {
            var containers = PodSpec.Items("containers").Where(c => c.At("name").GetString() == ContainerName).ToList();
            Assert.True(containers.Count == 1, $"the Deployment has no container named {ContainerName}");
            return containers[0];
        }
    }

    [Fact]
    public void Every_port_the_configuration_binds_is_a_container_port_and_a_service_port()
    {
        var bound = BoundPorts(Layered(MountedConfiguration()));
        Assert.Contains(bound, b => b.Key.EndsWith(":Admin", StringComparison.Ordinal));
        var containerPorts = Container.Items("ports").Select(p => p.At("containerPort").GetInt32()).ToHashSet();
        var servicePorts = rendered.OfKind("Service")
            .SelectMany(s => s.Items("spec", "ports").Select(p => (Service: s.At("metadata", "name").GetString(), Port: p.At("port").GetInt32(), Target: Container.ResolvePort(p.Find("targetPort") ?? p.At("port")))))
            .ToList();

        foreach (var (key, port) in bound)
        {
            Assert.True(containerPorts.Contains(port), $"{key} binds port {port}, which is not a containerPort of the Deployment");
            Assert.True(servicePorts.Any(s => s.Target == port), $"{key} binds port {port}, which no Service targets");
        }
    }

    [Fact]
    public void Clinical_ports_are_on_the_load_balancer_with_the_client_address_kept_and_admin_stays_inside()
    {
        var configuration = Layered(MountedConfiguration());
        var adminPort = AdminPort(configuration);
        var loadBalancers = rendered.OfKind("Service").Where(s => s.At("spec", "type").GetString() == "LoadBalancer").ToList();
        var loadBalancer = Assert.Single(loadBalancers);
        Assert.Equal("Local", loadBalancer.At("spec", "externalTrafficPolicy").GetString());

        var exposed = loadBalancer.Items("spec", "ports").ToDictionary(p => p.At("port").GetInt32(), p => Container.ResolvePort(p.Find("targetPort") ?? p.At("port")));
        foreach (var (key, port) in BoundPorts(configuration).Where(b => b.Port != adminPort))
        {
            // Clients dial the same port on the load balancer as the proxy binds (modalities are configured with 104).
            Assert.True(exposed.TryGetValue(port, out var target) && target == port, $"{key}: the LoadBalancer does not expose port {port} to the same container port");
        }

        Assert.False(exposed.ContainsValue(adminPort), $"the admin port {adminPort} (/status, /metrics) must not be on the LoadBalancer");
        Assert.Contains(rendered.OfKind("Service"), s => s.At("spec", "type").GetString() == "ClusterIP" && s.Items("spec", "ports").Any(p => Container.ResolvePort(p.Find("targetPort") ?? p.At("port")) == adminPort));
    }

    [Fact]
    public void Probes_and_scrape_annotations_point_at_the_admin_endpoint()
    {
        var adminPort = AdminPort(Layered(MountedConfiguration()));
        Assert.Equal("/readyz", Container.At("readinessProbe", "httpGet", "path").GetString());
        Assert.Equal("/healthz", Container.At("livenessProbe", "httpGet", "path").GetString());
        Assert.Equal("/healthz", Container.At("startupProbe", "httpGet", "path").GetString());
        foreach (var probe in new[] { "readinessProbe", "livenessProbe", "startupProbe" })
        {
            Assert.True(adminPort == Container.ResolvePort(Container.At(probe, "httpGet", "port")), $"{probe} is not on the admin port {adminPort}");
        }

        var annotations = Deployment.At("spec", "template", "metadata", "annotations");
        Assert.Equal("true", annotations.At("prometheus.io/scrape").GetString());
        Assert.Equal(adminPort.ToString(CultureInfo.InvariantCulture), annotations.At("prometheus.io/port").GetString());
        Assert.Equal("/metrics", annotations.At("prometheus.io/path").GetString());
    }

    [Fact]
    public void Prometheus_scrapes_each_pod_never_a_service_with_a_cluster_ip_on_the_admin_port()
    {
        var adminPort = AdminPort(Layered(MountedConfiguration()));
        var prometheus = File.ReadAllText(PrometheusConfigPath);
        var adminServices = rendered.OfKind("Service")
            .Where(s => s.Items("spec", "ports").Any(p => Container.ResolvePort(p.Find("targetPort") ?? p.At("port")) == adminPort))
            .ToList();

        // Every host a job names (targets, commented ones too, and dns_sd names), by its first DNS label.
        var names = Regex.Matches(prometheus, @"-\s*names:\s*\[([^\]]+)\]").SelectMany(m => m.Groups[1].Value.Split(',', StringSplitOptions.TrimEntries)).ToList();
        var hosts = Regex.Matches(prometheus, @"(?<![\w.-])([A-Za-z][\w.-]*):\d+").Select(m => m.Groups[1].Value).Concat(names).Select(h => h.Split('.')[0]).ToList();

        // A Service with a cluster IP balances across the pods: each scrape would reach another pod under one instance label.
        foreach (var service in adminServices.Where(s => s.Find("spec", "clusterIP")?.GetString() != "None"))
        {
            var name = service.At("metadata", "name").GetString()!;
            Assert.False(hosts.Contains(name), $"prometheus.yml scrapes the Service {name}, which has a cluster IP; scrape each pod instead");
        }

        // The DNS job: a headless Service of the kustomization on the admin port, in its namespace, keeping draining pods.
        var dns = Assert.Single(names).Split('.');
        var headless = rendered.Named("Service", dns[0]);
        Assert.Equal(headless.At("metadata", "namespace").GetString(), dns[1]);
        Assert.Equal("None", headless.At("spec", "clusterIP").GetString());
        Assert.True(headless.At("spec", "publishNotReadyAddresses").GetBoolean());
        Assert.Contains(adminServices, s => s.At("metadata", "name").GetString() == dns[0]);
        Assert.Matches($@"names:\s*\[{Regex.Escape(string.Join('.', dns))}\][\s#]*type: A[\s#]*port: {adminPort}\b", prometheus);
    }

    [Fact(Timeout = 60_000)]
    public async Task The_dns_job_of_prometheus_yml_passes_promtool_once_uncommented()
    {
        using var temp = TempDirectory.Create("prometheus-config-");
        var lines = File.ReadAllLines(PrometheusConfigPath).ToList();
        var start = lines.FindIndex(l => l == "  # - job_name: imagingproxy-dns");
        Assert.True(start >= 0, "prometheus.yml has no commented job imagingproxy-dns");
        for (var i = start; i < lines.Count && (i == start || lines[i].StartsWith("  #   ", StringComparison.Ordinal)); i++)
        {
            lines[i] = "  " + lines[i][4..];
        }

        var path = Path.Combine(temp.Path, "prometheus.yml");
        await File.WriteAllLinesAsync(path, lines);
        File.Copy(Path.Combine(Path.GetDirectoryName(PrometheusConfigPath)!, "alerts.yml"), Path.Combine(temp.Path, "alerts.yml"));
        var check = new ProcessStartInfo("promtool", ["check", "config", path]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var promtool = Process.Start(check)!;
        var output = promtool.StandardOutput.ReadToEndAsync();
        var errors = promtool.StandardError.ReadToEndAsync();
        await promtool.WaitForExitAsync();

        Assert.True(promtool.ExitCode == 0, $"promtool check config: {await output}{await errors}");
        Assert.Contains("dns_sd_configs:", string.Join('\n', lines.Skip(start).Take(6)), StringComparison.Ordinal);
    }

    private static string PrometheusConfigPath => Path.Combine(RepoPaths.Root, "deploy", "prometheus", "prometheus.yml");

    [Fact]
    public void Configuration_comes_from_the_ConfigMap_at_IMAGINGPROXY_CONFIG_and_certificates_from_the_tls_Secret()
    {
        var json = MountedConfiguration();
        Assert.Equal(File.ReadAllText(Path.Combine(RenderedKustomization.Directory, "imagingproxy.json")), json);

        var tlsVolume = Assert.Single(PodSpec.Items("volumes"), v => v.Find("secret") is { } secret && secret.At("secretName").GetString() == "imagingproxy-tls");
        var tlsMount = Assert.Single(Container.Items("volumeMounts"), m => m.At("name").GetString() == tlsVolume.At("name").GetString());
        Assert.Null(tlsMount.Find("subPath"));
        var tlsDirectory = tlsMount.At("mountPath").GetString();

        // A kubernetes.io/tls Secret holds tls.crt and tls.key: that is what the certificate paths must name.
        var certificate = Layered(json).GetSection("Kestrel:Endpoints:Viewers:Certificate");
        Assert.Equal($"{tlsDirectory}/tls.crt", certificate["Path"]);
        Assert.Equal($"{tlsDirectory}/tls.key", certificate["KeyPath"]);
    }

    [Fact]
    public void The_node_tls_Secret_is_optional_and_mounted_whole_for_tls_destinations()
    {
        var volume = Assert.Single(PodSpec.Items("volumes"), v => v.Find("secret") is { } secret && secret.At("secretName").GetString() == "imagingproxy-node-tls");
        Assert.True(volume.At("secret").At("optional").GetBoolean());
        var mount = Assert.Single(Container.Items("volumeMounts"), m => m.At("name").GetString() == volume.At("name").GetString());
        Assert.Null(mount.Find("subPath"));
        Assert.Equal("/etc/imagingproxy/node-tls", mount.At("mountPath").GetString());
    }

    [Fact]
    public void ConfigMap_configuration_passes_validation_and_lacks_only_the_Secret_files_outside_a_pod()
    {
        var json = MountedConfiguration();
        using var certificate = new TestCertificate();
        var errors = ConfigurationValidator.Validate(Layered(LocalConfiguration.WithCertificate(json, certificate)));
        Assert.True(errors.Count == 0, "the ConfigMap's configuration is invalid:\n" + string.Join('\n', errors));

        // Unchanged, the only problems on this machine are the certificate files, which the TLS Secret provides in the pod.
        var asShipped = ConfigurationValidator.Validate(Layered(json));
        Assert.True(asShipped.All(e => e.Contains("/etc/imagingproxy/tls/", StringComparison.Ordinal) && e.Contains("does not exist", StringComparison.Ordinal)), string.Join('\n', asShipped));
    }

    [Fact]
    public async Task Proxy_starts_with_the_ConfigMap_configuration_and_serves_the_probe_and_scrape_paths()
    {
        using var certificate = new TestCertificate();
        await using var proxy = await TestProxy.StartAsync(LocalConfiguration.OnLoopback(MountedConfiguration(), certificate));
        using var client = new HttpClient { Timeout = TimeSpan.FromSeconds(30) };
        var admin = proxy.Url(EndpointNames.Admin);

        var paths = new[]
        {
            Container.At("readinessProbe", "httpGet", "path").GetString()!,
            Container.At("livenessProbe", "httpGet", "path").GetString()!,
            Container.At("startupProbe", "httpGet", "path").GetString()!,
            Deployment.At("spec", "template", "metadata", "annotations", "prometheus.io/path").GetString()!,
        };
        foreach (var path in paths)
        {
            using var response = await client.GetAsync(new Uri(admin, path));
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"GET {path} on the Admin endpoint answered {(int)response.StatusCode}");
        }
    }

    [Fact]
    public void Grace_period_covers_preStop_and_the_drain_deadline()
    {
        var grace = PodSpec.At("terminationGracePeriodSeconds").GetInt32();
        var preStop = PreStopSeconds();
        Assert.True(grace > preStop, $"terminationGracePeriodSeconds {grace} must exceed the preStop sleep {preStop}");

        // The drain deadline is the host's shutdown timeout: how long SIGTERM waits for open associations, messages
        // and requests. The margin after it covers the last A-ABORTs, the log and metric flush and the process exit.
        var (drain, source) = DrainDeadline();
        Assert.True(drain > TimeSpan.Zero, $"the drain deadline {drain} ({source}) is not positive");
        Assert.True(grace > preStop + drain.TotalSeconds, $"terminationGracePeriodSeconds {grace} must exceed preStop {preStop} + drain deadline {drain.TotalSeconds} s ({source}) (plus a margin)");
    }

    [Fact]
    public void ASPNETCORE_SHUTDOWNTIMEOUTSECONDS_if_set_equals_the_drain_deadline()
    {
        // ImagingProxy sets the host's shutdown timeout from its drain deadline, overriding this variable; a different
        // value would only mislead whoever reads the manifest.
        if (OptionalEnvironment("ASPNETCORE_SHUTDOWNTIMEOUTSECONDS") is not { } value)
        {
            return;
        }

        var (drain, source) = DrainDeadline();
        var seconds = int.Parse(value, CultureInfo.InvariantCulture);
        Assert.True(seconds == drain.TotalSeconds, $"ASPNETCORE_SHUTDOWNTIMEOUTSECONDS {seconds} differs from the drain deadline {drain.TotalSeconds} s ({source}) that overrides it");
    }

    [Fact]
    public void Runs_at_least_two_replicas_spread_over_nodes_and_kept_by_a_disruption_budget()
    {
        Assert.True(Deployment.At("spec", "replicas").GetInt32() >= 2, "replicas < 2");
        Assert.True(rendered.OnlyOne("HorizontalPodAutoscaler").At("spec", "minReplicas").GetInt32() >= 2, "HPA minReplicas < 2");
        Assert.Equal(1, rendered.OnlyOne("PodDisruptionBudget").At("spec", "minAvailable").GetInt32());

        var antiAffinity = PodSpec.At("affinity", "podAntiAffinity");
        var terms = antiAffinity.Items("requiredDuringSchedulingIgnoredDuringExecution")
            .Concat(antiAffinity.Items("preferredDuringSchedulingIgnoredDuringExecution").Select(p => p.At("podAffinityTerm")));
        Assert.Contains(terms, t => t.At("topologyKey").GetString() == "kubernetes.io/hostname");
    }

    [Fact]
    public void Runs_as_non_root_on_a_read_only_root_filesystem_and_may_bind_low_ports()
    {
        var pod = PodSpec.At("securityContext");
        var container = Container.At("securityContext");
        Assert.True((container.Find("runAsNonRoot") ?? pod.At("runAsNonRoot")).GetBoolean(), "runAsNonRoot is not true");
        Assert.True(container.At("readOnlyRootFilesystem").GetBoolean(), "readOnlyRootFilesystem is not true");
        Assert.False(container.At("allowPrivilegeEscalation").GetBoolean());
        Assert.Contains("ALL", container.Items("capabilities", "drop").Select(c => c.GetString()));
        Assert.Equal("RuntimeDefault", (container.Find("seccompProfile") ?? pod.At("seccompProfile")).At("type").GetString());

        // The only writable place is /tmp, an emptyDir.
        var tmp = Assert.Single(Container.Items("volumeMounts"), m => m.At("mountPath").GetString() == "/tmp");
        Assert.Contains(PodSpec.Items("volumes"), v => v.At("name").GetString() == tmp.At("name").GetString() && v.Find("emptyDir") is not null);

        // Non-root binds below 1024 through the pod's sysctl.
        var lowest = BoundPorts(Layered(MountedConfiguration())).Min(b => b.Port);
        var sysctl = Assert.Single(pod.Items("sysctls"), s => s.At("name").GetString() == "net.ipv4.ip_unprivileged_port_start");
        Assert.True(int.Parse(sysctl.At("value").GetString()!, CultureInfo.InvariantCulture) <= lowest, $"ip_unprivileged_port_start does not allow port {lowest}");
    }

    /// <summary>The configuration file the pod reads: IMAGINGPROXY_CONFIG → volume mount → ConfigMap → key.</summary>
    private string MountedConfiguration()
    {
        var path = Environment(ProxyDefaults.ConfigEnvironmentVariable);
        var directory = Path.GetDirectoryName(path)!;
        var mount = Assert.Single(Container.Items("volumeMounts"), m => m.At("mountPath").GetString() == directory);
        Assert.True(mount.Find("subPath") is null, "a subPath mount never receives ConfigMap updates");
        var volume = Assert.Single(PodSpec.Items("volumes"), v => v.At("name").GetString() == mount.At("name").GetString());
        var configMap = rendered.Named("ConfigMap", volume.At("configMap", "name").GetString()!);
        return configMap.At("data", Path.GetFileName(path)).GetString()!;
    }

    private string Environment(string name)
    {
        var variable = Assert.Single(Container.Items("env"), e => e.At("name").GetString() == name);
        return variable.At("value").GetString()!;
    }

    /// <summary>
    /// The value of a container environment variable, or null when the container does not set it. Matched ignoring
    /// case, as configuration keys are: two spellings of one key in one container are an error.
    /// </summary>
    private string? OptionalEnvironment(string name)
    {
        var variables = Container.Items("env").Where(e => string.Equals(e.At("name").GetString(), name, StringComparison.OrdinalIgnoreCase)).ToList();
        Assert.True(variables.Count <= 1, $"the container sets {name} {variables.Count} times");
        return variables.Count == 0 ? null : variables[0].At("value").GetString()!;
    }

    /// <summary>
    /// <c>ImagingProxy:DrainTimeout</c> as the pod's host reads it (it sets the host's shutdown timeout): the environment
    /// variable over the ConfigMap's file (layered over appsettings.json), else the product default.
    /// </summary>
    private (TimeSpan Deadline, string Source) DrainDeadline()
    {
        const string Key = $"{ImagingProxyOptions.SectionName}:{nameof(ImagingProxyOptions.DrainTimeout)}";
        var variable = Key.Replace(":", "__", StringComparison.Ordinal);
        if (OptionalEnvironment(variable) is { } fromEnvironment)
        {
            return ParseTimeSpan(fromEnvironment, $"env {variable}");
        }

        if (Layered(MountedConfiguration())[Key] is { } fromConfigMap)
        {
            return ParseTimeSpan(fromConfigMap, $"ConfigMap {Key}");
        }

        return (ProxyDefaults.DrainTimeout, "the default");
    }

    private static (TimeSpan Deadline, string Source) ParseTimeSpan(string value, string source)
    {
        // As the configuration binder converts a TimeSpan (invariant culture, "c" or "g" formats).
        Assert.True(TimeSpan.TryParse(value, CultureInfo.InvariantCulture, out var parsed), $"{source} = '{value}' is not a TimeSpan");
        return (parsed, source);
    }

    private int PreStopSeconds()
    {
        var preStop = Container.At("lifecycle", "preStop");
        if (preStop.Find("sleep", "seconds") is { } seconds)
        {
            return seconds.GetInt32();
        }

        var command = preStop.Items("exec", "command").Select(c => c.GetString()!).ToList();
        Assert.True(command.Count == 2 && command[0] == "sleep", $"preStop is not a sleep: {string.Join(' ', command)}");
        return int.Parse(command[1], CultureInfo.InvariantCulture);
    }

    /// <summary>The layering of the pod: the host's appsettings.json, then the --config file.</summary>
    private static IConfigurationRoot Layered(string json)
        => new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(RepoPaths.Root, "src", "ImagingProxy.Host", "appsettings.json"), optional: false, reloadOnChange: false)
            .AddJsonStream(new MemoryStream(Encoding.UTF8.GetBytes(json)))
            .Build();

    /// <summary>Every port the configuration binds: Kestrel endpoints, DICOM and MLLP listeners.</summary>
    private static List<(string Key, int Port)> BoundPorts(IConfiguration configuration)
    {
        var ports = configuration.GetSection("Kestrel:Endpoints").GetChildren()
            .Select(e => (e.Path, new Uri(e["Url"]!).Port))
            .ToList();
        foreach (var protocol in new[] { "Dicom", "Mllp" })
        {
            foreach (var listener in configuration.GetSection($"{ImagingProxyOptions.SectionName}:{protocol}:Listeners").GetChildren())
            {
                ports.Add((listener.Path, int.Parse(listener["Port"]!, CultureInfo.InvariantCulture)));
            }
        }

        return ports;
    }

    private static int AdminPort(IConfiguration configuration)
        => new Uri(configuration[$"Kestrel:Endpoints:{EndpointNames.Admin}:Url"]!).Port;
}
