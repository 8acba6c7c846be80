"""What a policy is made of: decisions, rules, the built-in floor, and what one check found.

Pure data and matching; no file reading (``files.py``) and no command parsing
(``commands.py``). Decisions are ordered ``allow < ask < deny``: wherever several findings
meet, the strictest wins, so no allow rule can lift a deny or an ask found elsewhere.
"""

from __future__ import annotations

import fnmatch
import os
import shlex
from dataclasses import dataclass, field
from typing import Literal

Decision = Literal["allow", "ask", "deny"]
DECISIONS: tuple[Decision, ...] = ("allow", "ask", "deny")
_RANK = {name: rank for rank, name in enumerate(DECISIONS)}
BUILTIN = "builtin"
GLOB_CHARS = frozenset("*?[")

Token = str | tuple[str, ...]  # one argv position: a literal, alternatives, or "*"


def stricter(a: Decision, b: Decision) -> Decision:
    """The stricter of two decisions (deny > ask > allow)."""
    return a if _RANK[a] >= _RANK[b] else b


def rank(decision: Decision) -> int:
    return _RANK[decision]


@dataclass(frozen=True)
class Rule:
    """One ``[[rule]]``: an argv prefix (``match``; a tuple is alternatives, ``"*"`` any one
    token) and what to do when a command starts with it. The first token is compared with
    the basename of the program. ``source`` is ``FILE:LINE`` or ``builtin``."""

    id: str
    match: tuple[Token, ...]
    decision: Decision
    reason: str = ""
    source: str = BUILTIN

    def matches(self, argv: list[str]) -> bool:
        """Whether ``argv`` (program already by basename) starts with this rule's prefix.

        A program word holding glob characters (``/usr/bin/su*o`` typed in a shell line,
        which the shell expands) matches a deny or ask rule whose program it could expand
        to, and a deny or ask rule's program matches in any case (``SUDO`` runs ``sudo``
        on a case-insensitive file system); an allow rule matches only the exact name."""
        if len(argv) < len(self.match):
            return False
        for position, (token, word) in enumerate(zip(self.match, argv, strict=False)):
            if position == 0 and self.decision != "allow":
                if GLOB_CHARS & set(word):
                    if not _glob_matches(token, word.lower()):
                        return False
                elif not token_matches(_lower(token), word.lower()):
                    return False
                continue
            if position == 0 and GLOB_CHARS & set(word):
                return False
            if not token_matches(token, word):
                return False
        return True


def token_matches(token: Token, word: str) -> bool:
    if token == "*":
        return True
    if isinstance(token, tuple):
        return word in token
    return word == token


def _lower(token: Token) -> Token:
    return tuple(t.lower() for t in token) if isinstance(token, tuple) else token.lower()


def _glob_matches(token: Token, pattern: str) -> bool:
    names = token if isinstance(token, tuple) else (token,)
    return any(name == "*" or fnmatch.fnmatchcase(name.lower(), pattern) for name in names)


@dataclass(frozen=True)
class Finding:
    """What one simple command (or the whole check) came to: its decision, the rule that
    decided it (None: the policy's default), and the argv as evaluated."""

    decision: Decision
    argv: tuple[str, ...]
    rule: Rule | None = None

    def public(self) -> dict[str, object]:
        """The ``policy check --json`` shape: decision, rule, source, reason, argv."""
        rule = self.rule
        return {
            "decision": self.decision,
            "rule": None if rule is None else rule.id,
            "source": None if rule is None else rule.source,
            "reason": None if rule is None else rule.reason,
            "argv": list(self.argv),
        }

    def refusal(self) -> str:
        """The text an agent can act on: rule id, ``FILE:LINE``, the person's reason and
        the command as evaluated (``refused by policy rule "no-deploy" (FILE:7): ...``)."""
        rule = self.rule
        head = "refused by policy" if rule is None else f'refused by policy rule "{rule.id}"'
        source = "" if rule is None else f" ({rule.source})"
        reason = "" if rule is None or not rule.reason else f" {rule.reason}"
        return f"{head}{source}:{reason} Evaluated: {shlex.join(self.argv)}"


def strictest(findings: list[Finding]) -> Finding | None:
    """The first of the strictest findings (a rule's finding before a default's at equal
    rank), or None for no findings."""
    best: Finding | None = None
    for finding in findings:
        if best is None or rank(finding.decision) > rank(best.decision):
            best = finding
        elif rank(finding.decision) == rank(best.decision) and best.rule is None:
            best = finding if finding.rule is not None else best
    return best


# ------------------------------------------------------------------ the built-in floor
FLOOR_PROGRAMS: dict[str, tuple[tuple[str, ...], str]] = {
    "sudo": (("sudo", "su", "doas", "pkexec"), "Runs a command as another user (root)."),
    "mkfs": (("mkfs", "mkfs.*", "mke2fs"), "Formats a file system."),
    "shutdown": (("shutdown", "reboot", "halt", "poweroff"), "Stops or restarts the machine."),
}
FLOOR_NAMES = ("sudo", "su", "doas", "pkexec", "mkfs", "shutdown", "reboot", "halt", "poweroff")
RM_REASON = "Deletes the whole file system or home folder."
# The machine stopped by a service manager: (programs, {operand: the floor name it is}).
_POWER_VERBS = {
    "poweroff": "poweroff",
    "reboot": "reboot",
    "halt": "halt",
    "kexec": "reboot",
    "soft-reboot": "reboot",
    **{f"{verb}.target": verb for verb in ("poweroff", "reboot", "halt")},
    "kexec.target": "reboot",
}
_POWER_MANAGERS = ("systemctl", "loginctl")
_RUNLEVELS = {"0": "poweroff", "6": "reboot"}  # init 0, telinit 6
_FLOOR_HINT = " The person runs it in a terminal if it is really wanted."


@dataclass(frozen=True)
class Floor:
    """The built-in denials, minus what the user file's ``floor_off`` lifts (names as in
    ``FLOOR_NAMES`` or ``rm``; ``mkfs`` covers every ``mkfs.*``)."""

    lifted: frozenset[str] = frozenset()
    home: str = field(default_factory=lambda: os.path.expanduser("~"))

    def check(self, argv: list[str], cwd: str | None = None) -> Finding | None:
        """The floor's denial of ``argv`` (program by basename, in any case), or None;
        ``cwd`` (where it runs, when known) resolves ``rm``'s relative targets."""
        if not argv:
            return None
        program = argv[0].lower()
        stopped = self._power(program, argv)
        if stopped is not None:
            return stopped
        for group, (names, reason) in FLOOR_PROGRAMS.items():
            for name in names:
                if self._lifted(name, group):
                    continue
                if _program_is(program, name):
                    rule = Rule(f"floor-{name.rstrip('.*')}", (name,), "deny", reason + _FLOOR_HINT)
                    return Finding("deny", tuple(argv), rule)
        if (
            "rm" not in self.lifted
            and _program_is(program, "rm")
            and self._rm_everything(argv, cwd)
        ):
            rule = Rule("floor-rm", ("rm",), "deny", RM_REASON + _FLOOR_HINT)
            return Finding("deny", tuple(argv), rule)
        return None

    def _power(self, program: str, argv: list[str]) -> Finding | None:
        """``systemctl poweroff``, ``loginctl reboot``, ``systemctl start reboot.target``,
        ``telinit 6``: the shutdown names by another door."""
        operands = [word for word in argv[1:] if not word.startswith("-")]
        names: list[str] = []
        if any(_program_is(program, manager) for manager in _POWER_MANAGERS):
            names = [_POWER_VERBS[word] for word in operands if word in _POWER_VERBS]
        elif _program_is(program, "init") or _program_is(program, "telinit"):
            names = [_RUNLEVELS[word] for word in operands[:1] if word in _RUNLEVELS]
        for name in names:
            if not self._lifted(name, "shutdown"):
                reason = FLOOR_PROGRAMS["shutdown"][1] + _FLOOR_HINT
                return Finding("deny", tuple(argv), Rule(f"floor-{name}", (name,), "deny", reason))
        return None

    def _lifted(self, name: str, group: str) -> bool:
        bare = name.rstrip(".*")
        return (
            bare in self.lifted
            or name in self.lifted
            or (group == "mkfs" and "mkfs" in self.lifted)
        )

    def _rm_everything(self, argv: list[str], cwd: str | None = None) -> bool:
        recursive = False
        targets: list[str] = []
        options_done = False
        for word in argv[1:]:
            if not options_done and word == "--":
                options_done = True
            elif not options_done and word.startswith("--"):
                recursive = recursive or word in ("--recursive", "--no-preserve-root")
            elif not options_done and word.startswith("-") and len(word) > 1:
                recursive = recursive or "r" in word or "R" in word
            else:
                targets.append(word)
        return recursive and any(self._is_everything(target, cwd) for target in targets)

    def _is_everything(self, target: str, cwd: str | None = None) -> bool:
        """Whether removing ``target`` removes ``/``, the home folder or a folder that
        holds it. A relative target is resolved against ``cwd``; with no ``cwd``, ``*``
        counts as everything (it may be run anywhere)."""
        for prefix in ("~", "$HOME", "${HOME}"):
            if target == prefix or target.startswith(prefix + "/"):
                target = self.home + target[len(prefix) :]
                break
        if not target.startswith("/"):
            if cwd is None:
                return target in ("", "*", "/*")
            target = os.path.join(cwd, target)
        while target.endswith(("/*", "/.", "/")) and len(target) > 1:
            target = target[:-2] if target.endswith(("/*", "/.")) else target[:-1]
        normal = os.path.normpath(target or "/")
        home = os.path.normpath(self.home)
        return normal == "/" or home == normal or home.startswith(normal.rstrip("/") + "/")


def _program_is(program: str, name: str) -> bool:
    """``program`` (a basename, maybe a glob from a shell line) is, or could be, ``name``
    (which may itself end in ``*``)."""
    program = program.lower()
    if GLOB_CHARS & set(program):
        candidates = (name.replace(".*", ""), name.replace("*", "ext4"))
        return any(fnmatch.fnmatchcase(candidate, program) for candidate in candidates)
    return fnmatch.fnmatchcase(program, name)
