"""Programs that run another program given in their arguments, and how to find it.

``unwrap(argv)`` gives the wrapped command (``timeout 5 npm run x`` → ``npm run x``), so a
rule for ``npm`` sees through any number of wrappers. Each wrapper's own options are
skipped with their arguments (``nice -n 5``, ``timeout -k 3 10``, ``env -u NAME K=V``,
``xargs -I{} -n 1``); an option this table does not know is taken as a flag, which errs
toward finding the program too early, never toward missing it: the evaluator checks every
layer, the wrapper itself included.

``shell_string(argv)`` is the line of ``sh|bash|zsh|dash|ksh -c LINE`` (and ``eval``,
``trap LINE SIGNAL``, ``watch CMD...``, ``script -c LINE``, ``flock FILE -c LINE``);
``env_split_string`` that of ``env -S``; ``code_string(argv)`` the code of an
interpreter's ``-c``/``-e``; ``alias_values`` the commands an ``alias`` defines.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

SHELLS = frozenset({"sh", "bash", "zsh", "dash", "ksh", "mksh", "ash", "fish", "busybox"})
_INTERPRETER = re.compile(r"^(python[0-9.]*|pypy[0-9.]*|node|nodejs|bun|deno|perl|ruby|php|lua)$")
_CODE_FLAGS = {"-c", "-e", "-E", "-r", "-p", "--eval", "--print", "--command"}


@dataclass(frozen=True)
class Wrapper:
    """Options taking a value (short letters, long names), and how many positional words
    come before the wrapped command (``timeout``'s duration, ``taskset``'s mask)."""

    valued_short: str = ""
    valued_long: tuple[str, ...] = ()
    positionals: int = 0
    assignments: bool = False  # env: NAME=value words before the command


WRAPPERS: dict[str, Wrapper] = {
    "env": Wrapper(
        "uCSP",
        ("unset", "chdir", "split-string", "default-signal", "block-signal"),
        assignments=True,
    ),
    "timeout": Wrapper("sk", ("signal", "kill-after"), positionals=1),
    "nice": Wrapper("n", ("adjustment",)),
    "nohup": Wrapper(),
    "stdbuf": Wrapper("ioe", ("input", "output", "error")),
    "time": Wrapper("fo", ("format", "output")),
    "command": Wrapper(),
    "builtin": Wrapper(),
    "exec": Wrapper("a"),
    "noglob": Wrapper(),
    "setsid": Wrapper(),
    "ionice": Wrapper("cnp", ("class", "classdata", "pid")),
    "taskset": Wrapper(positionals=1),  # -c/--cpu-list is a flag: the list is the positional
    "chrt": Wrapper("T", ("sched-runtime", "sched-period", "sched-deadline"), positionals=1),
    "xargs": Wrapper(  # -e -i -l (--eof --replace --max-lines) take no separate value
        "adEILnPs",
        ("arg-file", "delimiter", "max-args", "max-procs", "max-chars", "process-slot-var"),
    ),
    "watch": Wrapper("n", ("interval",)),  # -d takes no separate value
    "flock": Wrapper("wE", ("timeout", "conflict-exit-code"), positionals=1),  # FILE CMD
    "npx": Wrapper("pc", ("package", "call")),
    "bunx": Wrapper("p", ("package",)),
    "uvx": Wrapper("w", ("with", "from", "python")),
    "unbuffer": Wrapper(),
    "caffeinate": Wrapper("tw"),
    "busybox": Wrapper(),  # busybox APPLET ARGS
    "toybox": Wrapper(),
}
_NO_COMMAND_FLAGS = {"ionice": "p", "taskset": "p", "chrt": "p"}  # they act on a pid instead


def program(word: str) -> str:
    """The basename rules compare (``/usr/bin/sudo`` → ``sudo``)."""
    return os.path.basename(word) or word


def unwrap(argv: list[str]) -> list[str] | None:
    """The command ``argv``'s wrapper runs, or None when ``argv[0]`` wraps nothing."""
    name = program(argv[0])
    wrapper = WRAPPERS.get(name)
    if wrapper is None:
        return None
    i, positionals = 1, wrapper.positionals
    while i < len(argv):
        word = argv[i]
        if word == "--":
            i += 1
            break
        if word.startswith("--") and len(word) > 2:
            long_name, has_value, _ = word[2:].partition("=")
            i += 2 if long_name in wrapper.valued_long and not has_value else 1
            continue
        if word.startswith("-") and len(word) > 1 and not (name == "nice" and word[1:].isdigit()):
            if set(word[1:]) & set(_NO_COMMAND_FLAGS.get(name, "")):
                return None
            i += _short_span(word, wrapper.valued_short)
            continue
        if name == "nice" and word.startswith("-"):
            i += 1
            continue
        if name == "env" and word == "-":  # env - CMD: -i
            i += 1
            continue
        if wrapper.assignments and "=" in word and word.split("=", 1)[0].isidentifier():
            i += 1
            continue
        if positionals:
            positionals -= 1
            i += 1
            continue
        break
    return argv[i:] or None


def _short_span(word: str, valued: str) -> int:
    """How many words a short-option cluster takes: 2 when its last valued letter ends it
    (``-n 5``), 1 when the value is attached (``-n5``) or no letter takes one."""
    letters = word[1:]
    for position, letter in enumerate(letters):
        if letter in valued:
            return 1 if position < len(letters) - 1 else 2
    return 1


def env_split_string(argv: list[str]) -> str | None:
    """The string of ``env -S STRING`` / ``--split-string=STRING`` (a command line env
    splits itself), or None."""
    if program(argv[0]) != "env":
        return None
    for i, word in enumerate(argv[1:], start=1):
        if word.startswith("--split-string"):
            _, equals, value = word.partition("=")
            return value if equals else (argv[i + 1] if i + 1 < len(argv) else "")
        if word.startswith("-") and not word.startswith("--") and "S" in word:
            rest = word[word.index("S") + 1 :]
            return rest or (argv[i + 1] if i + 1 < len(argv) else "")
        if not word.startswith("-"):
            return None
    return None


def shell_string(argv: list[str]) -> str | None:
    """The line a shell runs from ``-c`` (``bash -lc LINE``, ``busybox sh -c LINE``,
    ``eval WORDS``), or None when it runs a script or reads its input."""
    name = program(argv[0])
    if name == "eval":
        return " ".join(argv[1:])
    if name in _LINE_RUNNERS:
        return _LINE_RUNNERS[name](argv)
    if name not in SHELLS:
        return None
    rest = argv[1:]
    if name == "busybox":
        if not rest or program(rest[0]) not in SHELLS:
            return None
        rest = rest[1:]
    dash_c = False
    i = 0
    while i < len(rest):
        word = rest[i]
        if word in ("-o", "+o", "-O", "+O", "--rcfile", "--init-file"):
            i += 2
            continue
        if word == "--":
            i += 1
            break
        if word.startswith(("-", "+")) and len(word) > 1 and not word.startswith("--"):
            dash_c = dash_c or "c" in word
            i += 1
            continue
        if word.startswith("--"):
            dash_c = dash_c or word == "--command"
            i += 1
            continue
        break
    return rest[i] if dash_c and i < len(rest) else None


def _trap_line(argv: list[str]) -> str | None:
    """``trap [--] LINE SIGNAL...``: LINE runs when a signal comes (or at EXIT)."""
    operands = argv[1:]
    if operands[:1] == ["--"]:
        operands = operands[1:]
    if len(operands) < 2 or operands[0].startswith("-"):
        return None
    return operands[0]


def _watch_line(argv: list[str]) -> str | None:
    """``watch [OPTIONS] CMD...`` runs ``sh -c "CMD..."`` (unless ``-x``/``--exec``)."""
    command = unwrap(argv)
    options = argv[1 : len(argv) - len(command or [])]
    if not command or any(
        word in ("--exec", "--") or (word[:1] == "-" and word[1:2] != "-" and "x" in word)
        for word in options
    ):
        return None
    return " ".join(command)


def _option_value(argv: list[str], letter: str, long_name: str) -> str | None:
    """The value of ``-L VALUE`` (also in a cluster, ``-qL VALUE`` or ``-LVALUE``) or
    ``--long VALUE`` / ``--long=VALUE`` anywhere in ``argv``, or None."""
    for i, word in enumerate(argv[1:], start=1):
        if word == "--":
            return None
        following = argv[i + 1] if i + 1 < len(argv) else None
        if word == f"--{long_name}":
            return following
        if word.startswith(f"--{long_name}="):
            return word.split("=", 1)[1]
        if word.startswith("-") and not word.startswith("--") and letter in word[1:]:
            rest = word[word.index(letter, 1) + 1 :]
            return rest or following
    return None


def _flock_line(argv: list[str]) -> str | None:
    """``flock [OPTIONS] FILE -c LINE``."""
    i = 1
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "--":
        i += _short_span(argv[i], "wE") if not argv[i].startswith("--") else 1
    i += argv[i : i + 1] == ["--"]
    rest = argv[i + 1 :]  # after FILE
    return rest[1] if len(rest) > 1 and rest[0] in ("-c", "--command") else None


_LINE_RUNNERS = {
    "trap": _trap_line,
    "watch": _watch_line,
    "script": lambda argv: _option_value(argv, "c", "command"),
    "flock": _flock_line,
}


def alias_values(argv: list[str]) -> list[str]:
    """The commands ``alias NAME=VALUE...`` defines (run wherever NAME is typed later)."""
    if program(argv[0]) != "alias":
        return []
    return [word.split("=", 1)[1] for word in argv[1:] if "=" in word]


def is_shell(argv: list[str]) -> bool:
    """Whether ``argv`` runs a shell that would read commands from its input."""
    return bool(argv) and program(argv[0]) in SHELLS and shell_string(argv) is None


def interpreter(argv: list[str]) -> bool:
    return bool(argv) and bool(_INTERPRETER.match(program(argv[0])))


_AWK = re.compile(r"^(awk|gawk|mawk|nawk|busybox-awk)$")


def _awk_program(argv: list[str]) -> str | None:
    """The program text of ``awk [-F FS] [-v A=B] 'PROGRAM' FILE...`` (``system("...")``
    runs a shell line), or None when it comes from a file (``-f``)."""
    i = 1
    while i < len(argv):
        word = argv[i]
        if word in ("-e", "--source"):
            return argv[i + 1] if i + 1 < len(argv) else None
        if word == "-f" or word.startswith(("-f", "--file")):
            return None
        if word == "--":
            return argv[i + 1] if i + 1 < len(argv) else None
        if word in ("-F", "-v", "--field-separator", "--assign"):
            i += 2
            continue
        if word.startswith("-") and len(word) > 1:
            i += 1
            continue
        return word
    return None


def code_string(argv: list[str]) -> str | None:
    """The code an interpreter runs from its arguments (``python3 -c CODE``,
    ``node -e CODE``, ``perl -e CODE``, ``awk 'PROGRAM'``), or None."""
    if argv and _AWK.match(program(argv[0])):
        return _awk_program(argv)
    if not interpreter(argv):
        return None
    for i, word in enumerate(argv[1:], start=1):
        if word in _CODE_FLAGS:
            return argv[i + 1] if i + 1 < len(argv) else None
        if word.startswith("-c") and len(word) > 2 and not word.startswith("--"):
            return word[2:]
        if not word.startswith("-"):
            return None
    return None


def is_repl(argv: list[str]) -> bool:
    """An interpreter reading code from its input (``python3 -i``, bare ``node``)."""
    if not interpreter(argv) or code_string(argv) is not None:
        return False
    operands = [word for word in argv[1:] if not word.startswith("-")]
    return not operands or "-i" in argv


_LITERAL = re.compile(r"'((?:[^'\\]|\\.)*)'|\"((?:[^\"\\]|\\.)*)\"|`((?:[^`\\]|\\.)*)`")


def string_literals(code: str) -> list[str]:
    """The quoted strings in a piece of code (what ``os.system('...')`` or
    ``subprocess.run(['sudo', ...])`` would run is among them)."""
    found = []
    for match in _LITERAL.finditer(code):
        text = next(group for group in match.groups() if group is not None)
        found.append(text.encode("utf-8", "surrogatepass").decode("unicode_escape", "replace"))
    return found


def find_exec(argv: list[str]) -> list[list[str]]:
    """The commands of ``find ... -exec CMD ... ;`` (and ``-execdir``, ``-ok``, ``-okdir``)."""
    if program(argv[0]) != "find":
        return []
    commands: list[list[str]] = []
    current: list[str] | None = None
    for word in argv[1:]:
        if current is None:
            if word in ("-exec", "-execdir", "-ok", "-okdir"):
                current = []
        elif word in (";", "+"):
            commands.append(current)
            current = None
        else:
            current.append(word)
    if current:
        commands.append(current)
    return [command for command in commands if command]
