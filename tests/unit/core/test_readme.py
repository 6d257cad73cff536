"""The README is a front door that stays true: short, every `streamasr` command it shows
is one the command line knows (with options that command has), every file its commands
name exists, and every relative link of the README and the docs pages resolves.

Light: the parsers are built without torch (``streamasr.cli.parsers``)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from helpers.common import REPO
from streamasr.cli.parsers import build_parser

README = REPO / "README.md"
MAX_README_LINES = 260
# The quick start shows one command per main use.
QUICK_START = {"build-corpus", "evaluate", "export", "export-onnx", "transcribe", "serve", "train-lm"}

_FENCE = re.compile(r"^```[^\n]*\n.*?^```[ \t]*$", re.MULTILINE | re.DOTALL)
_BASH_BLOCK = re.compile(r"^```bash[ \t]*\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
_COMMENT = re.compile(r"(^|\s)#.*$")
_SEPARATORS = re.compile(r"\|\||&&|[|;]")
_OPTION = re.compile(r"^\[*(--[A-Za-z0-9][A-Za-z0-9-]*)")
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_REPO_FILE = re.compile(r"^(?:hparams|recipes|tools|benchmarks|docs)/[\w./-]+\.(?:yaml|py|sh|sbatch|txt|md)$")


def bash_commands(markdown: str) -> list[str]:
    """The commands of the ```bash blocks: continuation lines joined, comments dropped,
    pipelines and command lists split into their commands."""
    commands = []
    for block in _BASH_BLOCK.findall(markdown):
        for line in block.replace("\\\n", " ").splitlines():
            line = _COMMENT.sub("", line).strip()
            commands += [part.strip() for part in _SEPARATORS.split(line) if part.strip()]
    return commands


def words(command: str) -> list[str]:
    try:
        return shlex.split(command)
    except ValueError:  # an unbalanced quote in a placeholder: plain words are enough here
        return command.split()


def streamasr_invocations(command: str) -> list[tuple[str, list[str]]]:
    """(subcommand or top-level option, the --options after it) of each `streamasr`
    invocation in one command (`streamasr ...` or `python -m streamasr.cli ...`)."""
    found = []
    tokens = words(command)
    for index, token in enumerate(tokens):
        is_command = token == "streamasr" or token.endswith("/streamasr")
        is_module = token == "streamasr.cli" and index > 0 and tokens[index - 1] == "-m"
        if not (is_command or is_module) or index + 1 >= len(tokens):
            continue
        options = []
        for word in tokens[index + 2:]:
            match = _OPTION.match(word)
            if match:
                options.append(match.group(1).split("=")[0])
        found.append((tokens[index + 1], options))
    return found


def subparsers() -> tuple[dict, set[str]]:
    parser = build_parser()
    choices = parser._subparsers._group_actions[0].choices
    return choices, set(parser._option_string_actions)


def test_the_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, (
        f"README.md has {len(lines)} lines (at most {MAX_README_LINES}): move details to docs/")


def test_every_streamasr_command_in_the_readme_exists_with_its_options():
    choices, top_level = subparsers()
    seen, wrong = set(), []
    for command in bash_commands(README.read_text(encoding="utf-8")):
        for name, options in streamasr_invocations(command):
            if name.startswith("-"):
                if name not in top_level:
                    wrong.append(f"{command!r}: streamasr has no option {name}")
                continue
            if name not in choices:
                wrong.append(f"{command!r}: streamasr has no subcommand {name!r} (it has {', '.join(choices)})")
                continue
            seen.add(name)
            known = set(choices[name]._option_string_actions)
            wrong += [f"{command!r}: streamasr {name} has no option {option}" for option in options
                      if option not in known]
    assert not wrong, "\n".join(wrong)
    assert QUICK_START <= seen, f"the quick start shows no {sorted(QUICK_START - seen)} command"


def test_the_files_the_readme_commands_name_exist():
    missing = sorted({
        word.split("=", 1)[-1]
        for command in bash_commands(README.read_text(encoding="utf-8"))
        for word in words(command)
        if _REPO_FILE.match(word.split("=", 1)[-1]) and not (REPO / word.split("=", 1)[-1]).is_file()
    })
    assert not missing, f"README.md's commands name files that do not exist: {missing}"


def test_the_make_targets_of_the_readme_exist():
    makefile = (REPO / "Makefile").read_text(encoding="utf-8")
    targets = set(re.findall(r"^([A-Za-z][\w-]*):", makefile, re.MULTILINE))
    shown = {word for command in bash_commands(README.read_text(encoding="utf-8"))
             if command.startswith("make ") for word in words(command)[1:] if not word.startswith("-")}
    assert shown and shown <= targets, f"README.md shows make targets the Makefile lacks: {sorted(shown - targets)}"


def relative_links(page: Path) -> list[str]:
    """Link targets in a Markdown page outside code, without URLs or same-page anchors."""
    text = _FENCE.sub("", page.read_text(encoding="utf-8"))
    text = re.sub(r"``[^`]*``|`[^`\n]*`", "", text)
    targets = []
    for target in _LINK.findall(text):
        if _SCHEME.match(target) or target.startswith("#"):
            continue
        targets.append(target)
    return targets


def test_every_relative_link_of_the_readme_and_the_docs_resolves():
    pages = [README, *sorted((REPO / "docs").glob("*.md")), *sorted((REPO / "recipes").glob("*/*.md"))]
    broken = []
    for page in pages:
        for target in relative_links(page):
            path = target.split("#", 1)[0]
            if path and not (page.parent / path).exists():
                broken.append(f"{page.relative_to(REPO)}: {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_the_link_checker_sees_links_and_skips_code(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("[a](there.md#x) ![b](img.png) [c](https://example.org) [d](#here)\n"
                    "`[e](not-a-link.md)`\n```bash\n[f](inside-code.md)\n```\n", encoding="utf-8")
    assert relative_links(page) == ["there.md#x", "img.png"]


def test_the_command_reader_joins_lines_and_splits_pipelines():
    markdown = ("```bash\narecord -f S16_LE | streamasr transcribe - --model m  # --not-an-option\n"
                "streamasr evaluate m --manifest a.csv \\\n    --output o [--int8] --chunk-ms=640\n```\n")
    found = [hit for command in bash_commands(markdown) for hit in streamasr_invocations(command)]
    assert found == [("transcribe", ["--model"]), ("evaluate", ["--manifest", "--output", "--int8", "--chunk-ms"])]
