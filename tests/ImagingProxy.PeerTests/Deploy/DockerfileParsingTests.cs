namespace ImagingProxy.PeerTests.Deploy;

/// <summary>The Dockerfile and .dockerignore readers behind <see cref="DockerfileBuild"/>, on small inputs.</summary>
public sealed class DockerfileParsingTests
{
    [Fact]
    public void Continuations_comments_and_the_syntax_directive_are_handled()
    {
        var stages = DockerfileParser.Parse("""
            # syntax=docker/dockerfile:1
            # a comment
            FROM example/sdk:1 AS build
            WORKDIR /src
            RUN dotnet publish a.csproj \
                # a comment inside the continuation
                -o /app \

                --no-restore
            FROM example/runtime:1
            ENV A=1 \
                B=
            """);

        Assert.Equal(2, stages.Count);
        Assert.Equal(("example/sdk:1", "build"), (stages[0].Image, stages[0].Name));
        var run = stages[0].Instructions[1];
        Assert.Equal(("RUN", 5), (run.Keyword, run.Line));
        Assert.Equal(["dotnet", "publish", "a.csproj", "-o", "/app", "--no-restore"], DockerfileParser.Words(run, run.Arguments));
        Assert.Null(stages[1].Name);
        Assert.Equal(["A=1", "B="], DockerfileParser.Words(stages[1].Instructions[0], stages[1].Instructions[0].Arguments));
    }

    [Theory]
    [InlineData("RUN dotnet restore && dotnet build")]
    [InlineData("RUN dotnet publish -o $OUT")]
    [InlineData("COPY src/*.csproj ./")]
    public void Shell_operators_variables_and_globs_are_refused_with_the_line(string line)
    {
        var instruction = Assert.Single(DockerfileParser.Instructions(line));
        var refused = Assert.Throws<NotSupportedException>(() => DockerfileParser.Words(instruction, instruction.Arguments));
        Assert.Contains("line 1", refused.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Escape_directive_other_than_backslash_is_refused()
        => Assert.Throws<NotSupportedException>(() => DockerfileParser.Parse("# escape=`\nFROM a AS build\n"));

    [Fact]
    public void Dockerignore_excludes_everything_but_the_reincluded_paths_and_never_bin_or_obj()
    {
        var rules = DockerIgnore.Parse("*\n!Directory.Build.props\n!src/\n**/bin/\n**/obj/\n", "test");
        Assert.True(rules.IsExcluded("README.md"));
        Assert.True(rules.IsExcluded("tests/ImagingProxy.Tests/A.cs"));
        Assert.True(rules.IsExcluded("global.json"));
        Assert.False(rules.IsExcluded("Directory.Build.props"));
        Assert.False(rules.IsExcluded("src/ImagingProxy/Dicom/PduReader.cs"));
        Assert.True(rules.IsExcluded("src/ImagingProxy/bin/Release/net10.0/ImagingProxy.dll"));
        Assert.True(rules.IsExcluded("src/ImagingProxy/obj/project.assets.json"));
        Assert.Equal("**/obj/", rules.DecidingPattern("src/ImagingProxy/obj/project.assets.json"));
    }

    [Theory]
    [InlineData("src/[ab]*")]
    [InlineData("!../outside")]
    [InlineData("src/\\*.cs")]
    public void Dockerignore_patterns_the_reader_does_not_know_are_refused(string pattern)
    {
        var refused = Assert.Throws<NotSupportedException>(() => DockerIgnore.Parse($"*\n{pattern}\n", "x.dockerignore"));
        Assert.Contains("x.dockerignore line 2", refused.Message, StringComparison.Ordinal);
    }
}
