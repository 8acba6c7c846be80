"""The docs say what the code does: every knob, parameter and command is documented.

Fast and server-free: tool definitions come from the same specs ``tools/list`` serves
(``server/tools.py``, ``server/schemas.py``), the commands from the CLI's own parser, the
variables from the source text. Each test names what is missing and where it belongs.
"""

from __future__ import annotations

import argparse
import io
import re
import tokenize
from pathlib import Path
from typing import Any

import pytest

from process_mcp.server.tools import tool_specs

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = ROOT / "docs"
README_LIMIT = 10 * 1024
# The docs' topics (one file each); a link to one of these is fine even before it exists
# on a branch, since each is written by the branch that builds its subject.
TOPICS = {
    "tools.md", "cli.md", "configuration.md", "security.md", "architecture.md",
    "performance.md", "troubleshooting.md", "guarantees.md", "platforms.md",
}  # fmt: skip
TEXT_SUFFIXES = {".py", ".md", ".toml", ".txt", ".json", ".yml", ".yaml", ".sh", ".cfg"}
# Spelled in two pieces so this file does not trip its own check.
OUTSIDE_REFERENCES = ("SPEC" + " §", "notes" + "/", "/work" + "/", "shared" + "/")
VARIABLE = re.compile(r"PROCESS_MCP_[A-Z][A-Z_]*")
LINK = re.compile(r"\]\(([^)\s]+)\)")


def docs_files() -> list[Path]:
    return [README, *sorted(DOCS.glob("*.md"))] + [
        path for path in [ROOT / "CONTRIBUTING.md"] if path.exists()
    ]


def all_docs() -> str:
    return "\n".join(path.read_text() for path in docs_files())


def test_readme_is_at_most_10_kib() -> None:
    size = len(README.read_bytes())
    assert size <= README_LIMIT, f"README.md is {size} bytes; move detail into docs/"


STRING_TOKENS = {tokenize.STRING} | {
    getattr(tokenize, "FSTRING_MIDDLE", tokenize.STRING)  # Python 3.12+: f-string pieces
}


def string_literals(source: str) -> str:
    """The text of every string literal in ``source`` (names in comments do not count)."""
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    return "\n".join(token.string for token in tokens if token.type in STRING_TOKENS)


def test_every_variable_the_code_reads_is_documented() -> None:
    """Each ``PROCESS_MCP_*`` name in a string of ``src/`` (what the code reads, and what
    its messages tell the user to set) appears in README.md or docs/ (a name ending in
    ``_`` is a prefix, e.g. the ownership mark ``PROCESS_MCP_OWNER_<token>``)."""
    names = {
        name
        for path in (ROOT / "src").rglob("*.py")
        for name in VARIABLE.findall(string_literals(path.read_text()))
    }
    assert names, "no PROCESS_MCP_* variable found in src/: is the pattern still right?"
    text = all_docs()
    missing = sorted(
        name
        for name in names
        if not re.search(re.escape(name) + ("" if name.endswith("_") else r"(?![A-Z_])"), text)
    )
    assert not missing, f"variables read by the code but not in README.md or docs/: {missing}"


def sections(text: str) -> dict[str, str]:
    """``## heading`` → the text up to the next ``## `` heading."""
    parts = re.split(r"^## +(.+?)\s*$", text, flags=re.MULTILINE)
    return {parts[i]: parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def field_names(schema: dict[str, Any]) -> set[str]:
    """Property names of ``schema``, and of the objects in its arrays."""
    names: set[str] = set()
    for name, prop in schema.get("properties", {}).items():
        names.add(name)
        items = prop.get("items", {})
        if isinstance(items, dict) and "properties" in items:
            names |= field_names(items)
    return names


TOOLS = {name: spec.as_tool() for name, spec in tool_specs(5.0).items()}


@pytest.mark.parametrize("name", sorted(TOOLS))
def test_every_tool_parameter_and_answer_field_is_in_its_section(name: str) -> None:
    """docs/tools.md has a ``## <tool>`` section naming each input parameter and each
    answer field (as `code`)."""
    section = sections((DOCS / "tools.md").read_text()).get(name)
    assert section is not None, f"docs/tools.md has no '## {name}' section"
    tool = TOOLS[name]
    wanted = field_names(tool.input_schema) | field_names(tool.output_schema or {})
    missing = sorted(field for field in wanted if f"`{field}`" not in section)
    assert not missing, f"docs/tools.md '## {name}' does not name {missing}"


def subcommands(parser: argparse.ArgumentParser, prefix: str) -> list[str]:
    """Every command line ``parser`` accepts, nested ones included: ``policy check``."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append(f"{prefix} {name}")
                found += subcommands(sub, f"{prefix} {name}")
    return found


def test_every_cli_subcommand_is_documented() -> None:
    """Each command the person's CLI parses, and ``process-mcp supervisor``, appears as
    ``process-mcp <command>`` in README.md or docs/."""
    from process_mcp import entry
    from process_mcp.cli.main import parser

    commands = set(subcommands(parser(), "process-mcp"))
    commands |= {f"process-mcp {name}" for name in getattr(entry, "PERSON_COMMANDS", ())}
    commands.add("process-mcp supervisor")
    assert len(commands) > 3, f"found too few commands: {commands}"
    text = all_docs()
    missing = sorted(c for c in commands if not re.search(re.escape(c) + r"(?![\w-])", text))
    assert not missing, f"commands not in README.md or docs/: {missing}"


def repository_text_files() -> list[Path]:
    files = [README, *[p for p in [ROOT / "CONTRIBUTING.md", ROOT / "pyproject.toml"]]]
    for folder in ("src", "tests", "docs", "benchmarks", "scripts"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in TEXT_SUFFIXES]
    return [path for path in files if path.is_file()]


def test_nothing_refers_to_files_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {line.strip()[:100]}"
        for path in repository_text_files()
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if any(needle in line for needle in OUTSIDE_REFERENCES)
    ]
    assert not found, "references to files outside the repository:\n" + "\n".join(found)


def anchors(path: Path) -> set[str]:
    """GitHub's anchors for the headings of ``path``."""
    headings = re.findall(r"^#+ +(.+?)\s*$", path.read_text(), flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_relative_links_lead_somewhere() -> None:
    """Each relative link in README.md and docs/ names a file that exists (or one of the
    docs' topic files), and an anchor that one of its headings makes."""
    broken = []
    for path in docs_files():
        for target in LINK.findall(path.read_text()):
            if re.match(r"[a-z]+:", target):
                continue  # https:, mailto:
            file_part, _, anchor = target.partition("#")
            linked = (path.parent / file_part).resolve() if file_part else path
            if not linked.exists():
                if linked.name not in TOPICS and linked.name != "CONTRIBUTING.md":
                    broken.append(f"{path.relative_to(ROOT)}: {target} (no such file)")
                continue
            if anchor and linked.suffix == ".md" and anchor not in anchors(linked):
                broken.append(f"{path.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "broken links:\n" + "\n".join(broken)
