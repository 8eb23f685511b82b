using System.Text.Json;
using System.Text.RegularExpressions;

namespace ImagingProxy.Tests.Telemetry;

/// <summary>Pulls metric names out of PromQL, the Grafana dashboard and Prometheus rule files.</summary>
internal static partial class PromQlMetricNames
{
    private static readonly HashSet<string> s_keywords = new(StringComparer.OrdinalIgnoreCase)
    {
        "and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right", "inf", "nan", "atan2",
    };

    /// <summary>The metric names an expression selects, histogram series suffixes stripped.</summary>
    public static IReadOnlySet<string> Extract(string expr)
    {
        var text = StringLiteral().Replace(expr, " ");
        text = Variable().Replace(text, " ");
        text = LabelMatchers().Replace(text, " ");
        text = Ranges().Replace(text, " ");
        text = Grouping().Replace(text, " ");
        text = Duration().Replace(text, " ");
        text = Number().Replace(text, " ");
        var names = new HashSet<string>(StringComparer.Ordinal);
        foreach (Match match in Identifier().Matches(text))
        {
            var rest = text.AsSpan(match.Index + match.Length).TrimStart();
            if ((rest.Length > 0 && rest[0] == '(') || s_keywords.Contains(match.Value))
            {
                continue; // a function or aggregation, or a keyword
            }

            names.Add(StripSeriesSuffix(match.Value));
        }

        return names;
    }

    public static string StripSeriesSuffix(string name)
    {
        foreach (var suffix in (string[])["_bucket", "_sum", "_count"])
        {
            if (name.EndsWith(suffix, StringComparison.Ordinal))
            {
                return name[..^suffix.Length];
            }
        }

        return name;
    }

    /// <summary>Every PromQL expression in a Grafana dashboard: panel targets (rows included) and query variables.</summary>
    public static List<(string Where, string Expr)> DashboardExpressions(string json)
    {
        using var document = JsonDocument.Parse(json);
        var found = new List<(string, string)>();
        Walk(document.RootElement.GetProperty("panels"), "panels", found);
        foreach (var variable in document.RootElement.GetProperty("templating").GetProperty("list").EnumerateArray())
        {
            if (variable.GetProperty("type").GetString() == "query")
            {
                var query = variable.GetProperty("query");
                var text = query.ValueKind == JsonValueKind.String ? query.GetString()! : query.GetProperty("query").GetString()!;
                var metric = LabelValues().Match(text);
                Assert.True(metric.Success, $"variable {variable.GetProperty("name")}: expected label_values(metric..., label), got {text}");
                found.Add(($"variable {variable.GetProperty("name")}", metric.Groups["expr"].Value));
            }
        }

        return found;
    }

    /// <summary>Every <c>expr:</c> of a Prometheus rule file (plain or block scalar).</summary>
    public static List<(string Where, string Expr)> RuleExpressions(string yaml)
    {
        var lines = yaml.Replace("\r", "", StringComparison.Ordinal).Split('\n');
        var found = new List<(string, string)>();
        string? alert = null;
        for (var i = 0; i < lines.Length; i++)
        {
            var alertMatch = AlertLine().Match(lines[i]);
            if (alertMatch.Success)
            {
                alert = alertMatch.Groups["name"].Value;
            }

            var expr = ExprLine().Match(lines[i]);
            if (!expr.Success)
            {
                continue;
            }

            var value = expr.Groups["value"].Value.Trim();
            if (value is "|" or "|-" or ">" or ">-")
            {
                var indent = expr.Groups["indent"].Value.Length;
                var block = new List<string>();
                while (i + 1 < lines.Length && (lines[i + 1].Trim().Length == 0 || lines[i + 1].Length - lines[i + 1].TrimStart().Length > indent))
                {
                    block.Add(lines[++i].Trim());
                }

                value = string.Join(' ', block);
            }

            found.Add(($"alert {alert}", value));
        }

        return found;
    }

    private static void Walk(JsonElement panels, string path, List<(string, string)> found)
    {
        foreach (var panel in panels.EnumerateArray())
        {
            var title = panel.TryGetProperty("title", out var t) ? t.GetString() : "?";
            if (panel.TryGetProperty("targets", out var targets))
            {
                foreach (var target in targets.EnumerateArray())
                {
                    found.Add(($"panel '{title}' {target.GetProperty("refId").GetString()}", target.GetProperty("expr").GetString()!));
                }
            }

            if (panel.TryGetProperty("panels", out var nested))
            {
                Walk(nested, path + "/" + title, found);
            }
        }
    }

    [GeneratedRegex("\"(?:[^\"\\\\]|\\\\.)*\"|'(?:[^'\\\\]|\\\\.)*'|`[^`]*`")]
    private static partial Regex StringLiteral();

    [GeneratedRegex(@"\$\{?\w+\}?")]
    private static partial Regex Variable();

    [GeneratedRegex(@"\{[^{}]*\}")]
    private static partial Regex LabelMatchers();

    [GeneratedRegex(@"\[[^\[\]]*\]")]
    private static partial Regex Ranges();

    [GeneratedRegex(@"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", RegexOptions.IgnoreCase)]
    private static partial Regex Grouping();

    [GeneratedRegex(@"(?<![\w:.])(?:\d+(?:ms|[smhdwy]))+\b")]
    private static partial Regex Duration();

    [GeneratedRegex(@"(?<![\w:.])\d+(?:\.\d+)?(?:[eE][+-]?\d+)?")]
    private static partial Regex Number();

    [GeneratedRegex(@"[a-zA-Z_:][a-zA-Z0-9_:]*")]
    private static partial Regex Identifier();

    [GeneratedRegex(@"^\s*label_values\(\s*(?<expr>[a-zA-Z_:][a-zA-Z0-9_:]*(?:\{[^}]*\})?)\s*,\s*\w+\s*\)\s*$")]
    private static partial Regex LabelValues();

    [GeneratedRegex(@"^(?<indent>\s*)expr:\s*(?<value>.*)$")]
    private static partial Regex ExprLine();

    [GeneratedRegex(@"^\s*-\s*alert:\s*(?<name>\S+)")]
    private static partial Regex AlertLine();
}
