using System.Text;
using System.Text.RegularExpressions;

namespace ImagingProxy.PeerTests.Deploy;

/// <summary>
/// The part of the .dockerignore semantics that deploy/Dockerfile.dockerignore uses: one pattern a line, <c>#</c>
/// comments, <c>!</c> re-includes, <c>*</c> and <c>?</c> within one path segment, <c>**</c> over any number of
/// segments, a leading or trailing <c>/</c> ignored. As in Docker, a pattern matches a path when it matches the path
/// or one of its parent directories, and the last matching pattern decides. Character classes, escapes and
/// <c>..</c> throw <see cref="NotSupportedException"/>.
/// </summary>
public sealed class DockerIgnore
{
    private readonly List<(string Text, Regex Pattern, bool Include)> _rules;

    private DockerIgnore(List<(string Text, Regex Pattern, bool Include)> rules) => _rules = rules;

    /// <summary>No file: the whole context is sent.</summary>
    public static DockerIgnore None { get; } = new([]);

    public int RuleCount => _rules.Count;

    public static DockerIgnore Parse(string text, string source)
    {
        var rules = new List<(string, Regex, bool)>();
        var lines = text.ReplaceLineEndings("\n").Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#'))
            {
                continue;
            }

            var include = line.StartsWith('!');
            var pattern = (include ? line[1..] : line).Trim().Trim('/');
            if (pattern.Length == 0 || pattern.IndexOfAny(['[', ']', '\\', '{', '}']) >= 0 || pattern.Split('/').Any(s => s is ".." or "."))
            {
                throw new NotSupportedException($"{source} line {i + 1}: pattern '{line}' is not supported by the test's .dockerignore reader (DockerIgnore.cs)");
            }

            rules.Add((line, ToRegex(pattern), include));
        }

        return new DockerIgnore(rules);
    }

    /// <summary>
    /// For the build-context file of BuildKit: <c>&lt;Dockerfile&gt;.dockerignore</c> next to the Dockerfile wins over
    /// <c>.dockerignore</c> at the root of the context.
    /// </summary>
    public static (DockerIgnore Rules, string? Path) ForDockerfile(string dockerfile, string context)
    {
        foreach (var candidate in new[] { dockerfile + ".dockerignore", Path.Combine(context, ".dockerignore") })
        {
            if (File.Exists(candidate))
            {
                return (Parse(File.ReadAllText(candidate), candidate), candidate);
            }
        }

        return (None, null);
    }

    /// <summary>Whether a path of the context (relative, '/'-separated) is left out of the build context.</summary>
    public bool IsExcluded(string relativePath)
    {
        var path = relativePath.Replace('\\', '/').Trim('/');
        var excluded = false;
        foreach (var (_, pattern, include) in _rules)
        {
            if (MatchesOrParentMatches(pattern, path))
            {
                excluded = !include;
            }
        }

        return excluded;
    }

    /// <summary>The last pattern that decides about a path, for failure messages.</summary>
    public string? DecidingPattern(string relativePath)
    {
        var path = relativePath.Replace('\\', '/').Trim('/');
        return _rules.LastOrDefault(r => MatchesOrParentMatches(r.Pattern, path)).Text;
    }

    private static bool MatchesOrParentMatches(Regex pattern, string path)
    {
        for (var end = path.IndexOf('/'); end >= 0; end = path.IndexOf('/', end + 1))
        {
            if (pattern.IsMatch(path.AsSpan(0, end)))
            {
                return true;
            }
        }

        return pattern.IsMatch(path);
    }

    private static Regex ToRegex(string pattern)
    {
        var regex = new StringBuilder("^");
        for (var i = 0; i < pattern.Length; i++)
        {
            if (pattern.AsSpan(i).StartsWith("**/"))
            {
                regex.Append("(?:.*/)?");
                i += 2;
            }
            else if (pattern.AsSpan(i).StartsWith("**"))
            {
                regex.Append(".*");
                i++;
            }
            else if (pattern[i] == '*')
            {
                regex.Append("[^/]*");
            }
            else if (pattern[i] == '?')
            {
                regex.Append("[^/]");
            }
            else
            {
                regex.Append(Regex.Escape(pattern[i].ToString()));
            }
        }

        return new Regex(regex.Append('$').ToString(), RegexOptions.CultureInvariant);
    }
}
