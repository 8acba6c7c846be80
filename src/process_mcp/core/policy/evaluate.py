"""The one evaluator: every ``start``, ``restart``, ``send-input`` to a shell and
``process-mcp policy check`` ask it, so no entry point has weaker rules than another.

How a command is checked (the guarantees):
- The program is compared by basename (``/usr/bin/sudo`` is ``sudo``), at every wrapper
  layer (``env``, ``timeout``, ``nice``, ``xargs``... see ``wrappers.py``): a rule for the
  wrapper and a rule for what it wraps both apply.
- A shell line (``shell: true``, the line of ``sh|bash|zsh|dash -c``, ``eval``, ``env -S``,
  ``trap``, ``watch``, ``script -c``, ``flock -c``) is split into its simple commands
  (``shell.py``), each checked the same way, its words brace-expanded as bash does; the
  ``shell`` setting applies to the line as a whole. Where a line feeds a shell or an
  interpreter on its input (``echo 'sudo x' | sh``, ``bash <<< '...'``), every word of
  the line is also checked as a shell line, for deny and ask rules only; so is the
  command an ``alias`` defines.
- ``cd`` in a line moves where its later commands run, for the floor's ``rm`` check.
- An interpreter's inline code (``python3 -c``, ``node -e``...) has its string literals
  checked as shell lines, for deny and ask rules only (they can find, never grant).
- A program word the shell computes at run time (``$(...)``, a variable the run's env does
  not define) cannot be checked: the finding is ``ask``.
- Strictest wins (deny > ask > allow) across everything found; the policy's ``default``
  applies to a simple command that no rule matched at any layer. An allow rule therefore
  never lifts a deny or an ask found inside, before or after it.
- The floor (``rules.Floor``) is checked at every layer like a deny rule.
"""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Mapping

from process_mcp.core.policy import wrappers
from process_mcp.core.policy.model import Policy
from process_mcp.core.policy.rules import BUILTIN, Finding, Rule, strictest
from process_mcp.core.policy.shell import (
    SUBSTITUTION,
    ShellSyntax,
    brace_expand,
    program_first,
    simple_commands,
)
from process_mcp.core.policy.shell import words as shell_words

_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")
_MAX_LAYERS = 32
DYNAMIC = Rule(
    "dynamic-program",
    ("*",),
    "ask",
    "The program is chosen when the shell runs ($VAR or $(...)), so no rule can be checked; "
    "name the program literally.",
)
SYNTAX = Rule(
    "shell-syntax", ("*",), "ask", "The shell line cannot be split into commands to check."
)


class _Check:
    """One evaluation: the policy, the run's environment, and what was found so far."""

    def __init__(
        self, policy: Policy, env: Mapping[str, str] | None, cwd: str | None = None
    ) -> None:
        self.policy = policy
        self.env = os.environ if env is None else env
        self.cwd = cwd  # where the command being checked runs (None: not known)
        self.findings: list[Finding] = []

    # ------------------------------------------------------------------ argv
    def argv(
        self, argv: list[str], scan_only: bool = False, depth: int = 0, expand: bool = False
    ) -> None:
        """Check one simple command through all its wrapper layers (``expand``: words of
        a shell line, brace-expanded as bash would)."""
        if depth > 8 or not argv:
            return
        if expand:
            argv = [word for given in argv for word in brace_expand(given)]
        matched = False
        current: list[str] | None = argv
        last: list[str] = argv
        for _ in range(_MAX_LAYERS):
            if not current:
                break
            resolved = self._resolve_program(current, scan_only)
            if resolved is None:
                return
            current = resolved
            named = [wrappers.program(current[0]), *current[1:]]
            last = named
            matched = self._rules(named) or matched
            if self._nested(current, depth):
                return  # a shell line: its own commands carry the defaults
            code = wrappers.code_string(current)
            if code is not None:
                self.scan_code(code, depth)
            for defined in wrappers.alias_values(current):
                self.line(defined, depth + 1, scan_only=True)
            for inner in wrappers.find_exec(current):
                self.argv(inner, scan_only, depth + 1)
            current = wrappers.unwrap(current)
        if not matched and not scan_only:
            self.findings.append(Finding(self.policy.default.value, tuple(last), self._default()))

    def _resolve_program(self, argv: list[str], scan_only: bool) -> list[str] | None:
        """``argv`` with variables of its program word expanded from the run's env; None
        when the program is only known at run time (an ``ask`` is recorded)."""
        word = argv[0]
        if "$" not in word:
            return argv
        names = [a or b for a, b in _VARIABLE.findall(word)]
        if SUBSTITUTION in word or not names or any(name not in self.env for name in names):
            if not scan_only:
                self.findings.append(Finding("ask", tuple(argv), DYNAMIC))
            return None
        expanded = _VARIABLE.sub(lambda m: self.env[m.group(1) or m.group(2)], word)
        try:
            words = shlex.split(expanded)
        except ValueError:
            words = expanded.split()
        return program_first(words + argv[1:]) or None

    def _rules(self, named: list[str]) -> bool:
        """Record the floor's and every matching rule's findings; whether any matched."""
        found = False
        floor = self.policy.floor.check(named, self.cwd)
        if floor is not None:
            self.findings.append(floor)
            found = True
        for rule in self.policy.rules:
            if rule.matches(named):
                self.findings.append(Finding(rule.decision, tuple(named), rule))
                found = True
        return found

    def _nested(self, current: list[str], depth: int) -> bool:
        line = wrappers.shell_string(current)
        if line is None:
            line = wrappers.env_split_string(current)
        if line is None:
            return False
        self.line(line, depth + 1)
        return True

    # ------------------------------------------------------------------ lines
    def line(self, line: str, depth: int = 0, scan_only: bool = False) -> None:
        """Check a shell line: the ``shell`` setting, then each of its simple commands."""
        if not scan_only and self.policy.shell.value != "allow":
            rule = Rule(
                "shell",
                ("*",),
                self.policy.shell.value,
                "Shell lines need the person's say (policy 'shell' setting).",
                self.policy.shell.source,
            )
            self.findings.append(Finding(rule.decision, (line,), rule))
        if depth > 4 * _MAX_LAYERS:
            return
        try:
            commands = simple_commands(line)
        except ShellSyntax as exc:
            if not scan_only:
                reason = f"{SYNTAX.reason} ({exc})"
                rule = Rule(SYNTAX.id, SYNTAX.match, SYNTAX.decision, reason)
                self.findings.append(Finding("ask", (line,), rule))
            return
        cwd = self.cwd
        try:
            for words in commands:
                self.argv(words, scan_only, depth + 1, expand=True)
                self._cd(words)
        finally:
            self.cwd = cwd
        if any(_reads_commands(words) for words in commands):
            self._scan_words(line, depth)

    def _cd(self, words: list[str]) -> None:
        """Follow ``cd DIR`` (``cd``, ``cd ~``: home; ``cd -`` or a computed folder: not
        known any more) for the commands after it."""
        if wrappers.program(words[0]) != "cd":
            return
        operands = [word for word in words[1:] if not word.startswith("-") or word == "-"]
        target = operands[0] if operands else "~"
        if target == "~" or target.startswith("~/"):
            target = os.path.expanduser(target)
        if target == "-" or "$" in target or "~" in target:
            self.cwd = None
        elif target.startswith("/"):
            self.cwd = os.path.normpath(target)
        else:
            self.cwd = (
                None if self.cwd is None else os.path.normpath(os.path.join(self.cwd, target))
            )

    def _scan_words(self, line: str, depth: int) -> None:
        """A shell or interpreter in ``line`` reads its commands from its input: what it
        is fed (an ``echo``'s words, a here-string) is among the line's words."""
        before = len(self.findings)
        for word in shell_words(line)[:256]:
            if word != line and not word.isidentifier():
                self.line(word, depth + 2, scan_only=True)
                self.scan_code(word, depth + 2)
        kept = [f for f in self.findings[before:] if f.decision != "allow" and f.rule is not None]
        del self.findings[before:]
        self.findings.extend(kept)

    def scan_code(self, code: str, depth: int = 0) -> None:
        """Deny and ask rules found in the string literals of inline code."""
        before = len(self.findings)
        for literal in wrappers.string_literals(code)[:256]:
            self.line(literal, depth + 1, scan_only=True)
        kept = [f for f in self.findings[before:] if f.decision != "allow" and f.rule is not None]
        del self.findings[before:]
        self.findings.extend(kept)

    def roots(self, cwd: str | None) -> None:
        if cwd is None or not self.policy.roots:
            return
        real = os.path.realpath(cwd)
        for group, source in zip(self.policy.roots, self.policy.roots_sources, strict=True):
            paths = [os.path.realpath(os.path.expanduser(root)) for root in group]
            if not any(_inside(real, path) for path in paths):
                reason = f"The working folder must lie inside {', '.join(group)}."
                rule = Rule("roots", ("*",), "deny", reason, source)
                self.findings.append(Finding("deny", (f"cwd={real}",), rule))

    def _default(self) -> Rule | None:
        setting = self.policy.default
        if setting.source == BUILTIN or setting.value == "allow":
            return None
        return Rule(
            "default", ("*",), setting.value, "No rule allows this command.", setting.source
        )

    def result(self, argv: list[str]) -> Finding:
        return strictest(self.findings) or Finding("allow", tuple(argv))


def _reads_commands(words: list[str]) -> bool:
    """Whether the simple command ``words`` (through its wrappers) is a shell or an
    interpreter that reads commands from its input."""
    inner: list[str] | None = words
    for _ in range(_MAX_LAYERS):
        if not inner:
            return False
        if wrappers.is_shell(inner) or wrappers.is_repl(inner):
            return True
        inner = wrappers.unwrap(inner)
    return False


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def evaluate_command(
    policy: Policy,
    argv: list[str],
    *,
    shell: bool = False,
    cwd: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Finding:
    """The decision for starting ``argv`` (or, with ``shell``, the line ``argv[0]``) in
    ``cwd`` with the run's ``env`` (default: this process's)."""
    check = _Check(policy, env, None if cwd is None else os.path.realpath(cwd))
    check.roots(cwd)
    if shell:
        check.line(" ".join(argv))
    else:
        check.argv(list(argv))
    return check.result(argv)


def evaluate_input(
    policy: Policy, program_argv: list[str], text: str, env: Mapping[str, str] | None = None
) -> Finding | None:
    """The decision for sending ``text`` to a process started as ``program_argv``: each
    line a shell command when that is a shell reading its input, or code whose literals
    are scanned for a REPL (``python3 -i``); None when the input is data (anything else)."""
    inner: list[str] | None = list(program_argv)
    while inner and not (wrappers.is_shell(inner) or wrappers.is_repl(inner)):
        inner = wrappers.unwrap(inner)
    if not inner:
        return None
    check = _Check(policy, env)
    for line in text.splitlines():
        if not line.strip():
            continue
        if wrappers.is_shell(inner):
            check.line(line)
        else:
            check.scan_code(line)
    return check.result([text]) if check.findings else None
