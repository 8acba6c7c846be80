"""Reading policy files: the person's (``$XDG_CONFIG_HOME/process-mcp/policy.toml``, else
``~/.config/process-mcp/policy.toml``) and a project's (``.process-mcp/policy.toml`` in the
session's default folder), which may only tighten.

Guarantees:
- A file is parsed with stdlib ``tomllib`` and re-read when its mtime (or size) changes;
  a missing file is no rules (the floor still applies).
- A broken file — TOML syntax, an unknown key, a wrong type, a bad decision, a rule
  example that does not hold — raises :class:`PolicyError` naming ``FILE:LINE`` and the
  fault, and keeps raising on every check until the file is fixed: never a silent
  allow-all.
- From a project file, allow rules, a looser ``default``/``shell``, higher limits,
  ``floor_off`` and ``[redact] enabled = false`` are ignored, each with a warning.
- Nothing here writes a file.
"""

from __future__ import annotations

import os
import re
import tomllib
from dataclasses import replace
from pathlib import Path
from typing import Any

from process_mcp.core.policy.model import Limits, Policy, RedactConfig, RedactPattern, Setting
from process_mcp.core.policy.rules import DECISIONS, Floor, Rule, Token, rank

PROJECT_FILE = Path(".process-mcp") / "policy.toml"
_TOP_KEYS = {"version", "default", "shell", "roots", "rule", "limits", "redact", "floor_off"}
_RULE_KEYS = {"id", "match", "decision", "reason", "examples", "not_examples"}
_LIMIT_KEYS = {"memory", "max_running", "per_session"}
_REDACT_KEYS = {"enabled", "patterns"}
_HEADER = re.compile(r"^\s*\[\[?\s*([A-Za-z0-9_.\-]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-]+)\s*=")


class PolicyError(Exception):
    """A policy file that cannot be used; the message names ``FILE:LINE`` and the fault."""


def user_policy_path() -> Path:
    config = os.environ.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(config) / "process-mcp" / "policy.toml"


def shown(path: Path | str) -> str:
    """``path`` with the home folder written ``~`` (as refusals show it)."""
    text, home = str(path), str(Path.home())
    return "~" + text[len(home) :] if text == home or text.startswith(home + os.sep) else text


class _Lines:
    """Where each key of a TOML text is: ``line(table, key)``, ``rule_line(i, key)``."""

    def __init__(self, text: str) -> None:
        self.keys: dict[tuple[str, int, str], int] = {}
        self.rules: list[int] = []
        table, index = "", 0
        for number, raw in enumerate(text.splitlines(), start=1):
            header = _HEADER.match(raw)
            if header and raw.lstrip().startswith("["):
                table = header.group(1)
                if raw.lstrip().startswith("[[") and table == "rule":
                    self.rules.append(number)
                index = len(self.rules) - 1 if table == "rule" else 0
                continue
            key = _KEY.match(raw)
            if key:
                self.keys.setdefault((table, index, key.group(1)), number)

    def line(self, table: str, key: str, index: int = 0) -> int:
        if table == "rule" and key == "":
            return self.rules[index] if index < len(self.rules) else 1
        return self.keys.get(
            (table, index, key), self.line(table, "", index) if table == "rule" else 1
        )


class _Reader:
    """One file's content turned into policy parts, with errors at ``FILE:LINE``."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.name = shown(path)
        self.lines = _Lines(text)
        try:
            self.data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            match = re.search(r"line (\d+)", str(exc))
            raise PolicyError(f"{self.name}:{match.group(1) if match else 1}: {exc}") from None

    def fail(self, table: str, key: str, fault: str, index: int = 0) -> PolicyError:
        return PolicyError(f"{self.name}:{self.lines.line(table, key, index)}: {fault}")

    def source(self, table: str, key: str, index: int = 0) -> str:
        return f"{self.name}:{self.lines.line(table, key, index)}"

    def known(self, table: str, body: dict[str, Any], allowed: set[str], index: int = 0) -> None:
        for key in body:
            if key not in allowed:
                raise self.fail(
                    table, key, f"unknown key {key!r} (known: {', '.join(sorted(allowed))})", index
                )

    def decision(self, table: str, key: str, value: Any, index: int = 0) -> Any:
        if value not in DECISIONS:
            raise self.fail(table, key, f"{key} must be allow, ask or deny, got {value!r}", index)
        return value

    def rules(self) -> list[Rule]:
        body = self.data.get("rule", [])
        if not isinstance(body, list):
            raise self.fail("", "rule", "'rule' must be an array of tables: write [[rule]]")
        found: list[Rule] = []
        seen: set[str] = set()
        for index, table in enumerate(body):
            self.known("rule", table, _RULE_KEYS, index)
            rule_id = table.get("id")
            if not isinstance(rule_id, str) or not rule_id:
                raise self.fail("rule", "id", "every [[rule]] needs an id (a string)", index)
            if rule_id in seen:
                raise self.fail("rule", "id", f"rule id {rule_id!r} is used twice", index)
            seen.add(rule_id)
            match = self._match(table.get("match"), index)
            decision = self.decision("rule", "decision", table.get("decision"), index)
            reason = table.get("reason", "")
            if not isinstance(reason, str):
                raise self.fail("rule", "reason", "reason must be a string", index)
            rule = Rule(rule_id, match, decision, reason, self.source("rule", "", index))
            self._examples(rule, table, index)
            found.append(rule)
        return found

    def _match(self, value: Any, index: int) -> tuple[Token, ...]:
        fault = (
            "match must be a non-empty list of strings or lists of strings, "
            'e.g. ["npm", "run", ["deploy", "release"]]'
        )
        if not isinstance(value, list) or not value:
            raise self.fail("rule", "match", fault, index)
        tokens: list[Token] = []
        for item in value:
            if isinstance(item, str) and item:
                tokens.append(item)
            elif isinstance(item, list) and item and all(isinstance(x, str) and x for x in item):
                tokens.append(tuple(item))
            else:
                raise self.fail("rule", "match", fault, index)
        return tuple(tokens)

    def _examples(self, rule: Rule, table: dict[str, Any], index: int) -> None:
        """Codex-style load-time tests: each ``examples`` line must match, each
        ``not_examples`` line must not."""
        from process_mcp.core.policy.wrappers import program

        for key, expected in (("examples", True), ("not_examples", False)):
            for example in table.get(key, []):
                words = example.split() if isinstance(example, str) else list(example)
                named = [program(words[0]), *words[1:]] if words else []
                if rule.matches(named) != expected:
                    verb = "does not match" if expected else "matches"
                    raise self.fail(
                        "rule", key, f"rule {rule.id!r} {verb} its example {example!r}", index
                    )

    def setting(self, key: str) -> Setting | None:
        if key not in self.data:
            return None
        return Setting(self.decision("", key, self.data[key]), self.source("", key))

    def roots(self) -> tuple[str, ...] | None:
        value = self.data.get("roots")
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            raise self.fail("", "roots", 'roots must be a list of folders, e.g. ["~/code", "/tmp"]')
        return tuple(value)

    def limits(self) -> Limits:
        body = self.data.get("limits", {})
        self.known("limits", body, _LIMIT_KEYS)
        memory, memory_text = None, None
        if "memory" in body:
            from process_mcp.core.settings import parse_size

            memory_text = str(body["memory"])
            try:
                memory = parse_size(memory_text) if not isinstance(body["memory"], bool) else None
            except ValueError:
                memory = None
            if not memory:
                raise self.fail(
                    "limits",
                    "memory",
                    f'memory must be a size like "4G" or "512M", got {body["memory"]!r}',
                )
        counts = {}
        for key in ("max_running", "per_session"):
            if key in body:
                value = body[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                    raise self.fail(
                        "limits", key, f"{key} must be a whole number of at least 1, got {value!r}"
                    )
                counts[key] = value
        sources = {key: self.source("limits", key) for key in body}
        return Limits(
            memory, memory_text, counts.get("max_running"), counts.get("per_session"), sources
        )

    def redact(self) -> tuple[bool | None, list[RedactPattern]]:
        body = self.data.get("redact", {})
        self.known("redact", body, _REDACT_KEYS)
        enabled = body.get("enabled")
        if enabled is not None and not isinstance(enabled, bool):
            raise self.fail("redact", "enabled", "enabled must be true or false")
        patterns = []
        for item in body.get("patterns", []):
            if (
                not isinstance(item, dict)
                or not isinstance(item.get("id"), str)
                or not isinstance(item.get("regex"), str)
            ):
                raise self.fail(
                    "redact", "patterns", 'each pattern is { id = "name", regex = "..." }'
                )
            try:
                import re2

                re2.compile(item["regex"])
            except Exception as exc:  # re2.error: the file's fault, named
                raise self.fail(
                    "redact", "patterns", f"pattern {item['id']!r}: bad regex: {exc}"
                ) from None
            patterns.append(
                RedactPattern(item["id"], item["regex"], self.source("redact", "patterns"))
            )
        return enabled, patterns

    def floor_off(self) -> frozenset[str]:
        value = self.data.get("floor_off", [])
        if not isinstance(value, list) or not all(isinstance(x, str) for x in value):
            raise self.fail("", "floor_off", 'floor_off must be a list of names, e.g. ["sudo"]')
        return frozenset(value)


def read(path: Path) -> _Reader:
    """The parsed file (raises PolicyError for anything wrong, naming FILE:LINE)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"{shown(path)}:1: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise PolicyError(f"{shown(path)}:1: not UTF-8 text ({exc.reason})") from None
    reader = _Reader(path, text)
    reader.known("", reader.data, _TOP_KEYS)
    version = reader.data.get("version", 1)
    if version != 1:
        raise reader.fail(
            "", "version", f"version {version!r} is not understood (this release reads version 1)"
        )
    return reader


def user_policy(reader: _Reader | None) -> Policy:
    if reader is None:
        return Policy()
    enabled, patterns = reader.redact()
    roots = reader.roots()
    return Policy(
        default=reader.setting("default") or Setting(),
        shell=reader.setting("shell") or Setting(),
        roots=() if not roots else (roots,),
        roots_sources=() if not roots else (reader.source("", "roots"),),
        rules=tuple(reader.rules()),
        floor=Floor(lifted=reader.floor_off()),
        limits=reader.limits(),
        redact=RedactConfig(enabled is not False, tuple(patterns)),
        files=(str(reader.path),),
    )


def tighten(policy: Policy, reader: _Reader) -> Policy:
    """``policy`` with a project file's stricter parts added (see the module docstring)."""
    warnings: list[str] = []
    rules = list(policy.rules)
    for rule in reader.rules():
        if rule.decision == "allow":
            warnings.append(
                f"{rule.source}: allow rule {rule.id!r} ignored (a project file may only tighten)"
            )
        else:
            rules.append(rule)
    settings = {}
    for key in ("default", "shell"):
        mine, theirs = getattr(policy, key), reader.setting(key)
        if theirs is not None and rank(theirs.value) > rank(mine.value):
            settings[key] = theirs
        elif theirs is not None and theirs.value != mine.value:
            warnings.append(
                f"{theirs.source}: {key} = {theirs.value!r} ignored (looser than {mine.value!r})"
            )
    if reader.data.get("floor_off"):
        warnings.append(
            f"{reader.source('', 'floor_off')}: floor_off ignored "
            "(only the person's own file may lift the floor)"
        )
    roots, roots_sources = policy.roots, policy.roots_sources
    if (theirs_roots := reader.roots()) is not None and theirs_roots:
        roots, roots_sources = (*roots, theirs_roots), (*roots_sources, reader.source("", "roots"))
    enabled, patterns = reader.redact()
    if enabled is False:
        warnings.append(
            f"{reader.source('redact', 'enabled')}: enabled = false ignored "
            "(only the person's own file may turn redaction off)"
        )
    return replace(
        policy,
        rules=tuple(rules),
        roots=roots,
        roots_sources=roots_sources,
        limits=_lower_limits(policy.limits, reader.limits(), warnings),
        redact=replace(policy.redact, patterns=(*policy.redact.patterns, *patterns)),
        files=(*policy.files, str(reader.path)),
        warnings=(*policy.warnings, *warnings),
        **settings,
    )


def _lower_limits(mine: Limits, theirs: Limits, warnings: list[str]) -> Limits:
    values: dict[str, Any] = {}
    sources = dict(mine.sources)
    for key in ("memory", "max_running", "per_session"):
        current, proposed = getattr(mine, key), getattr(theirs, key)
        if proposed is None:
            continue
        if current is None or proposed < current:
            values[key] = proposed
            sources[key] = theirs.sources[key]
            if key == "memory":
                values["memory_text"] = theirs.memory_text
        else:
            warnings.append(
                f"{theirs.sources[key]}: {key} ignored (higher than the person's limit)"
            )
    return replace(mine, sources=sources, **values)
