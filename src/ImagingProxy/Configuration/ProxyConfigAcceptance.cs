using Yarp.ReverseProxy.Configuration;

namespace ImagingProxy.Configuration;

/// <summary>
/// YARP's verdict on a gated change. YARP reads <c>ReverseProxy</c> and validates it itself (transforms, match
/// templates, policies ...) and keeps its previous configuration when it refuses a new one; without this check the
/// DICOM and MLLP route tables would take a change that YARP refused (say a renamed cluster) and point at a cluster
/// YARP does not have.
/// </summary>
/// <remarks>
/// YARP applies a change synchronously, inside the reload notification of the configuration it reads, so the verdict
/// is normally known when <see cref="End"/> is called; otherwise it waits for it, bounded. No verdict at all means
/// YARP's configuration reader failed (a value it could not convert), which it only logs.
/// </remarks>
internal sealed class ProxyConfigAcceptance : IConfigChangeListener, IConfigurationAcceptance
{
    private static readonly TimeSpan s_verdictTimeout = TimeSpan.FromSeconds(5);
    private readonly Lock _lock = new();
    private Exception? _lastFailure;
    private TaskCompletionSource _firstVerdict = NewVerdict();

    public void Begin()
    {
        lock (_lock)
        {
            _lastFailure = null;
            _firstVerdict = NewVerdict();
        }
    }

    public IReadOnlyList<string> End()
    {
        // YARP applies once per provider whose configuration changed (ImagingProxy's XDS routes are a provider too), each
        // time with every provider's latest configuration: the last verdict is the one about the whole change.
        Task first;
        lock (_lock)
        {
            first = _firstVerdict.Task;
        }

        if (!first.Wait(s_verdictTimeout))
        {
            return ["ReverseProxy: YARP did not apply the change; a value it could not read (see the error of Yarp.ReverseProxy.Configuration.ConfigProvider.ConfigurationConfigProvider in the log)."];
        }

        lock (_lock)
        {
            return _lastFailure is { } failure ? Problems(failure) : [];
        }
    }

    public void ConfigurationLoadingFailed(IProxyConfigProvider configProvider, Exception exception) => Verdict(exception);

    public void ConfigurationLoaded(IReadOnlyList<IProxyConfig> proxyConfigs)
    {
    }

    public void ConfigurationApplyingFailed(IReadOnlyList<IProxyConfig> proxyConfigs, Exception exception) => Verdict(exception);

    public void ConfigurationApplied(IReadOnlyList<IProxyConfig> proxyConfigs) => Verdict(null);

    /// <summary>YARP's problems, one line each ("The proxy config is invalid." wraps one exception per problem).</summary>
    internal static IReadOnlyList<string> Problems(Exception failure)
    {
        var problems = new List<string>();
        foreach (var inner in failure is AggregateException aggregate ? aggregate.InnerExceptions : [failure])
        {
            problems.Add(inner.InnerException is { } cause ? $"ReverseProxy: {inner.Message} {cause.Message}" : $"ReverseProxy: {inner.Message}");
        }

        return problems;
    }

    private void Verdict(Exception? failure)
    {
        TaskCompletionSource first;
        lock (_lock)
        {
            _lastFailure = failure;
            first = _firstVerdict;
        }

        first.TrySetResult();
    }

    private static TaskCompletionSource NewVerdict() => new(TaskCreationOptions.RunContinuationsAsynchronously);
}
