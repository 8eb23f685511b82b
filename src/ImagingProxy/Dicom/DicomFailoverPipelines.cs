using System.Collections.Concurrent;
using Polly;
using Polly.Retry;
using Polly.Timeout;

namespace ImagingProxy.Dicom;

/// <summary>
/// The Polly pipelines of failover before acceptance, one pair per <see cref="DicomFailoverSettings"/> (built once,
/// reused by every association; a reload with other values gets a new pair):
/// <list type="bullet">
/// <item><see cref="Pipelines.Attempts"/>: a retry over destinations. Each execution picks a destination not tried
/// yet and returns its outcome; a <c>Failed</c> outcome (connect failure or timeout, transient reject, A-ABORT or close
/// before the AC) is retried at once on the next one, up to <see cref="DicomFailoverSettings.MaxAttempts"/> executions.
/// Accepted, rejected permanently and "no destination left" end it. Exceptions (the client went away, the drain
/// deadline) are never retried.</item>
/// <item><see cref="Pipelines.Connect"/>: the per-attempt TCP connect timeout.</item>
/// </list>
/// </summary>
public sealed class DicomFailoverPipelines(TimeProvider time)
{
    private readonly ConcurrentDictionary<DicomFailoverSettings, Pipelines> _cache = new();

    public Pipelines For(DicomFailoverSettings settings)
    {
        if (_cache.TryGetValue(settings, out var pipelines))
        {
            return pipelines;
        }

        if (_cache.Count > 16)
        {
            _cache.Clear();
        }

        return _cache.GetOrAdd(settings, Build);
    }

    private Pipelines Build(DicomFailoverSettings settings)
    {
        var attempts = new ResiliencePipelineBuilder<DicomAttemptResult> { TimeProvider = time };
        if (settings.MaxAttempts > 1)
        {
            attempts.AddRetry(new RetryStrategyOptions<DicomAttemptResult>
            {
                MaxRetryAttempts = settings.MaxAttempts - 1,
                Delay = TimeSpan.Zero,
                BackoffType = DelayBackoffType.Constant,
                UseJitter = false,
                ShouldHandle = static args => ValueTask.FromResult(args.Outcome.Exception is null && args.Outcome.Result == DicomAttemptResult.Failed),
            });
        }

        var connect = new ResiliencePipelineBuilder { TimeProvider = time }
            .AddTimeout(new TimeoutStrategyOptions { Timeout = settings.ConnectTimeout })
            .Build();
        return new Pipelines(attempts.Build(), connect, settings);
    }

    /// <summary>The retry over destinations and the connect timeout for one <see cref="DicomFailoverSettings"/>.</summary>
    public sealed record Pipelines(ResiliencePipeline<DicomAttemptResult> Attempts, ResiliencePipeline Connect, DicomFailoverSettings Settings);
}

/// <summary>How one attempt on one destination ended, as the retry sees it.</summary>
public enum DicomAttemptResult
{
    /// <summary>The node sent A-ASSOCIATE-AC.</summary>
    Accepted,

    /// <summary>The node rejected permanently; its RJ goes to the client.</summary>
    Rejected,

    /// <summary>Retry on the next destination.</summary>
    Failed,

    /// <summary>No destination left to try.</summary>
    Exhausted,
}
