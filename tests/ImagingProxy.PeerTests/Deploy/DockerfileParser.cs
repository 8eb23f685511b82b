using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace ImagingProxy.PeerTests.Deploy;

/// <summary>
/// Just enough of the Dockerfile syntax for deploy/Dockerfile: parser directives (<c># syntax=</c>), comments,
/// backslash line continuations (with comment and empty lines inside them dropped, as BuildKit does), stages, and the
/// words of an instruction. Anything this cannot read faithfully (<c># escape=</c>, shell operators, variables,
/// globs) throws <see cref="NotSupportedException"/> naming the line, so a test built on it fails instead of guessing.
/// </summary>
public static partial class DockerfileParser
{
    /// <summary>Characters that would make a shell (or BuildKit's own expansion) read the words differently.</summary>
    private const string ShellSpecial = ";&|<>$`()*?[]{}~#";

    public static IReadOnlyList<DockerStage> Parse(string text)
    {
        var instructions = Instructions(text);
        var stages = new List<DockerStage>();
        List<DockerInstruction>? current = null;
        foreach (var instruction in instructions)
        {
            if (instruction.Keyword == "FROM")
            {
                var words = Words(instruction, instruction.Arguments).Where(w => !w.StartsWith("--", StringComparison.Ordinal)).ToList();
                var named = words.Count == 3 && string.Equals(words[1], "AS", StringComparison.OrdinalIgnoreCase);
                if (words.Count != 1 && !named)
                {
                    throw new NotSupportedException($"{instruction}: expected FROM IMAGE [AS NAME]");
                }

                current = [];
                stages.Add(new DockerStage(words[0], named ? words[2] : null, instruction, current));
            }
            else if (current is null)
            {
                throw new NotSupportedException($"{instruction}: instructions before the first FROM (global ARG) are not supported");
            }
            else
            {
                current.Add(instruction);
            }
        }

        return stages;
    }

    /// <summary>The instructions of a Dockerfile, in order.</summary>
    public static List<DockerInstruction> Instructions(string text)
    {
        var lines = text.ReplaceLineEndings("\n").Split('\n');
        var instructions = new List<DockerInstruction>();
        var directivesAllowed = true;
        StringBuilder? pending = null;
        var pendingLine = 0;
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i];
            var trimmed = line.Trim();
            if (directivesAllowed && ParserDirective().Match(line) is { Success: true } directive)
            {
                // Directives only at the very top; escape= would change what a continuation is.
                if (!string.Equals(directive.Groups[1].Value, "syntax", StringComparison.OrdinalIgnoreCase)
                    && !(string.Equals(directive.Groups[1].Value, "escape", StringComparison.OrdinalIgnoreCase) && directive.Groups[2].Value == "\\"))
                {
                    throw new NotSupportedException($"line {i + 1}: parser directive '{trimmed}' is not supported");
                }

                continue;
            }

            directivesAllowed = false;
            // Comment and empty lines are dropped, also inside a continuation.
            if (trimmed.Length == 0 || trimmed.StartsWith('#'))
            {
                continue;
            }

            if (pending is null)
            {
                pending = new StringBuilder();
                pendingLine = i + 1;
            }

            if (trimmed.EndsWith('\\'))
            {
                pending.Append(trimmed.AsSpan(0, trimmed.Length - 1).TrimEnd()).Append(' ');
                continue;
            }

            pending.Append(trimmed);
            instructions.Add(ToInstruction(pending.ToString(), pendingLine));
            pending = null;
        }

        if (pending is not null)
        {
            throw new NotSupportedException($"line {pendingLine}: the Dockerfile ends inside a line continuation");
        }

        return instructions;
    }

    /// <summary>
    /// The words of a shell-form argument list: split on whitespace, double and single quotes and backslash escapes
    /// honoured. Shell operators, variables and globs are refused: this never runs a shell.
    /// </summary>
    public static List<string> Words(DockerInstruction instruction, string text)
    {
        var words = new List<string>();
        var word = new StringBuilder();
        var inWord = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (char.IsWhiteSpace(c))
            {
                if (inWord)
                {
                    words.Add(word.ToString());
                    word.Clear();
                    inWord = false;
                }

                continue;
            }

            inWord = true;
            if (c == '\'' || c == '"')
            {
                var end = text.IndexOf(c, i + 1);
                if (end < 0)
                {
                    throw new NotSupportedException($"{instruction}: unterminated quote");
                }

                var quoted = text[(i + 1)..end];
                if (c == '"' && quoted.IndexOfAny(['$', '`', '\\']) >= 0)
                {
                    throw new NotSupportedException($"{instruction}: expansion or escapes inside double quotes are not supported");
                }

                word.Append(quoted);
                i = end;
            }
            else if (c == '\\')
            {
                if (i + 1 == text.Length)
                {
                    throw new NotSupportedException($"{instruction}: trailing backslash");
                }

                word.Append(text[++i]);
            }
            else if (ShellSpecial.Contains(c, StringComparison.Ordinal))
            {
                throw new NotSupportedException($"{instruction}: '{c}' (shell operator, variable or glob) is not supported");
            }
            else
            {
                word.Append(c);
            }
        }

        if (inWord)
        {
            words.Add(word.ToString());
        }

        return words;
    }

    /// <summary>The words of an exec-form (<c>["a", "b"]</c>) or shell-form argument list.</summary>
    public static List<string> ExecOrShellWords(DockerInstruction instruction)
    {
        if (!instruction.Arguments.StartsWith('['))
        {
            return Words(instruction, instruction.Arguments);
        }

        try
        {
            return JsonSerializer.Deserialize<List<string>>(instruction.Arguments) ?? [];
        }
        catch (JsonException ex)
        {
            throw new NotSupportedException($"{instruction}: not a JSON array of strings ({ex.Message})", ex);
        }
    }

    private static DockerInstruction ToInstruction(string text, int line)
    {
        var space = text.IndexOfAny([' ', '\t']);
        return space < 0
            ? new DockerInstruction(text.ToUpperInvariant(), "", line)
            : new DockerInstruction(text[..space].ToUpperInvariant(), text[(space + 1)..].Trim(), line);
    }

    [GeneratedRegex(@"^#\s*([A-Za-z]+)\s*=\s*(\S*)\s*$")]
    private static partial Regex ParserDirective();
}
