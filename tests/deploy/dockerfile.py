"""Just enough of Docker's Dockerfile and .dockerignore rules to check the image's build without a
daemon: instructions grouped by stage, COPY's parts, and which paths the build context leaves out
(moby's patternmatcher: ``*`` and ``?`` stay within a path segment, ``**`` spans segments, a
pattern that matches a parent directory matches what is in it, ``!`` lets a path back in, and the
last pattern that matches decides)."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Instruction:
    keyword: str  # upper case
    args: str
    line: int


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def of(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]


@dataclass(frozen=True)
class Copy:
    flags: dict[str, str]
    sources: list[str]
    dest: str


def instructions(text: str) -> list[Instruction]:
    """The instructions, continuation lines joined and comments (parser directives too) dropped."""
    out: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        stripped = raw.strip()
        if not stripped or stripped.startswith("#"):
            continue  # a comment inside a continued instruction is dropped too, as Docker does
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        keyword, _, args = " ".join(pending).partition(" ")
        out.append(Instruction(keyword.upper(), args.strip(), start))
        pending = []
    assert not pending, "the Dockerfile ends inside a continued instruction"
    return out


def stages(text: str) -> list[Stage]:
    """The build stages in order; instructions before the first FROM (ARG) are left out."""
    found: list[Stage] = []
    for instruction in instructions(text):
        if instruction.keyword == "FROM":
            words = [w for w in instruction.args.split() if not w.startswith("--")]
            name = words[2] if len(words) == 3 and words[1].lower() == "as" else None
            found.append(Stage(words[0], name))
        elif found:
            found[-1].instructions.append(instruction)
    return found


def exec_form(args: str) -> list[str]:
    """The JSON array of an exec-form instruction (ENTRYPOINT, CMD)."""
    parsed = json.loads(args)
    assert isinstance(parsed, list), args
    assert all(isinstance(word, str) for word in parsed), args
    return [str(word) for word in parsed]


def copy_parts(args: str) -> Copy:
    words = exec_form(args) if args.startswith("[") else shlex.split(args)
    flags: dict[str, str] = {}
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    assert len(words) >= 2, f"COPY needs a source and a destination: {args}"
    return Copy(flags, words[:-1], words[-1])


def env_assignments(args: str) -> dict[str, str]:
    """ENV's KEY=value pairs (the legacy ``ENV KEY value`` form is not used here)."""
    pairs = [word.partition("=") for word in shlex.split(args)]
    assert all(sep for _, sep, _ in pairs), f"ENV in KEY=value form only: {args}"
    return {key: value for key, _, value in pairs}


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    out, i = "", 0
    while i < len(pattern):
        char = pattern[i]
        if pattern.startswith("**/", i):
            out, i = out + "(?:.*/)?", i + 3
            continue
        if pattern.startswith("**", i):
            out, i = out + ".*", i + 2
            continue
        if char == "*":
            out += "[^/]*"
        elif char == "?":
            out += "[^/]"
        elif char == "[":
            end = pattern.index("]", i)
            out, i = out + pattern[i : end + 1], end + 1
            continue
        else:
            out += re.escape(char)
        i += 1
    return re.compile(f"^{out}$")


@dataclass(frozen=True)
class DockerIgnore:
    patterns: tuple[tuple[bool, re.Pattern[str]], ...]  # (lets back in, regex)

    @classmethod
    def parse(cls, text: str) -> DockerIgnore:
        patterns = []
        for raw in text.splitlines():
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            include = line.startswith("!")
            pattern = line[1:].strip() if include else line
            pattern = re.sub(r"/+$", "", pattern.lstrip("/")) or "."
            patterns.append((include, _pattern_regex(pattern)))
        return cls(tuple(patterns))

    def excluded(self, path: str) -> bool:
        """Whether ``path`` (relative to the context, '/'-separated) stays out of the build context."""
        path = path.strip("/")
        parts = path.split("/")
        candidates = [path] + ["/".join(parts[: n + 1]) for n in range(len(parts) - 1)]
        excluded = False
        for include, regex in self.patterns:
            if any(regex.match(candidate) for candidate in candidates):
                excluded = not include
        return excluded
