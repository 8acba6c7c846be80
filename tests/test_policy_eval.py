"""The evaluator and the floor: every published bypass of a command filter is refused, and
ordinary commands are left alone (pure: no processes, no files but policy files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from process_mcp.core.policy import Policy, PolicyError, evaluate_command, evaluate_input
from process_mcp.core.policy.files import read, tighten, user_policy
from process_mcp.core.policy.loader import PolicySource

FLOOR = Policy()
USER_RULES = """\
version = 1
default = "allow"
shell = "allow"

[[rule]]
id = "no-deploy"
match = ["npm", "run", ["deploy", "deploy:prod"]]
decision = "deny"
reason = "Production deploys are the person's job."
examples = ["npm run deploy", "npm run deploy:prod --force"]
not_examples = ["npm run dev", "npm test"]

[[rule]]
id = "no-iptables"
match = ["iptables"]
decision = "deny"
reason = "Firewall changes are the person's job."

[[rule]]
id = "db-reset"
match = ["npm", "run", "db:reset"]
decision = "ask"
reason = "Drops the local database."

[[rule]]
id = "no-dd"
match = ["dd"]
decision = "deny"
reason = "Raw disk writes."

[[rule]]
id = "allow-sh"
match = ["sh"]
decision = "allow"
"""


def policy_from(tmp_path: Path, text: str, name: str = "policy.toml") -> Policy:
    path = tmp_path / name
    path.write_text(text)
    return user_policy(read(path))


@pytest.fixture
def rules(tmp_path: Path) -> Policy:
    return policy_from(tmp_path, USER_RULES)


def decide(policy: Policy, argv: list[str] | str, **kw: object) -> str:
    if isinstance(argv, str):
        return evaluate_command(policy, [argv], shell=True, **kw).decision  # type: ignore[arg-type]
    return evaluate_command(policy, argv, **kw).decision  # type: ignore[arg-type]


# Each published bypass of a blocklist, as argv or as a shell line (DesktopCommander
# #217 #218 #421 #422 #423 #497 #730, claude-code #18613 #92542), against the bare floor.
FLOOR_ARGV_BYPASSES = [
    ["/usr/bin/sudo", "x"],
    ["sh", "-c", "sudo x"],
    ["bash", "-lc", "echo hi; sudo x"],
    ["dash", "-c", "echo hi\nsudo x"],
    ["zsh", "-c", "echo $(sudo x)"],
    ["busybox", "sh", "-c", "sudo x"],
    ["env", "sudo", "x"],
    ["env", "-i", "FOO=1", "-u", "HOME", "sudo", "x"],
    ["env", "-S", "sudo x"],
    ["env", "--split-string=sudo x"],
    ["xargs", "sudo"],
    ["xargs", "-I{}", "-n", "1", "sudo", "{}"],
    ["python3", "-c", "import os;os.system('sudo x')"],
    ["python3", "-c", "import subprocess; subprocess.run(['sudo', 'x'])"],
    ["node", "-e", "require('child_process').execSync('sudo x')"],
    ["npx", "sudo"],
    ["npx", "-y", "sudo", "x"],
    ["timeout", "5", "sudo", "x"],
    ["timeout", "-k", "3", "-s", "KILL", "10", "sudo", "x"],
    ["nice", "-n", "5", "sudo", "x"],
    ["nice", "-5", "sudo", "x"],
    ["nohup", "sudo", "x"],
    ["stdbuf", "-oL", "-e", "0", "sudo", "x"],
    ["time", "-p", "sudo", "x"],
    ["command", "sudo", "x"],
    ["exec", "sudo", "x"],
    ["setsid", "-f", "sudo", "x"],
    ["ionice", "-c", "3", "sudo", "x"],
    ["taskset", "-c", "0", "sudo", "x"],
    ["chrt", "-f", "10", "sudo", "x"],
    ["timeout", "5", "env", "A=1", "nice", "sudo", "x"],
    ["find", ".", "-exec", "sudo", "x", "{}", ";"],
    ["su", "-"],
    ["doas", "sh"],
    ["pkexec", "bash"],
    ["mkfs.ext4", "/dev/sdz"],
    ["/sbin/mkfs", "-t", "ext4", "/dev/sdz"],
    ["shutdown", "-h", "now"],
    ["reboot"],
    ["systemctl", "poweroff"] and ["poweroff"],
    ["halt"],
    ["rm", "-rf", "/"],
    ["rm", "-fr", "/"],
    ["rm", "--recursive", "--force", "/"],
    ["rm", "-r", "-f", "--", "/"],
    ["rm", "-rf", "/*"],
    ["rm", "-rf", "~"],
    ["rm", "-rf", "$HOME"],
    ["rm", "-Rf", str(Path.home())],
    ["rm", "-rf", str(Path.home()) + "/"],
    ["/bin/rm", "-rf", "//"],
]

FLOOR_SHELL_BYPASSES = [
    "echo $(sudo x)",
    'echo "$(sudo x)"',
    "echo `sudo x`",
    "`sudo x`",
    "/usr/bin/sudo x",
    '"sudo" id',
    "s'u'do id",
    "\\sudo id",
    "/usr/bin/su*o id",
    "/usr/bin/su?o id",
    "echo hi\nsudo x",
    "echo hi # comment\nsudo x",
    "cat <(sudo x)",
    "diff <(ls) >(sudo tee x)",
    "sh -c 'sudo x'",
    "bash -c \"bash -c 'sudo x'\"",
    "env sudo x",
    "ls | xargs sudo",
    "FOO=1 sudo x",
    "timeout 5 sudo x",
    "true && sudo x",
    "false || sudo x",
    "sleep 1 & sudo x",
    "(sudo x)",
    "{ sudo x; }",
    "if true; then sudo x; fi",
    "! sudo x",
    "2>/dev/null sudo x",
    "echo hi > out; sudo x",
    "eval 'sudo x'",
    "x=$(echo $(sudo y))",
    "python3 -c \"import os; os.system('sudo x')\"",
    "rm -fr /",
    "rm -rf ~/",
    "rm -rf $HOME",
    "mkfs.ext4 /dev/sdz",
]


@pytest.mark.parametrize("argv", FLOOR_ARGV_BYPASSES, ids=lambda a: " ".join(a))
def test_floor_refuses_every_published_argv_bypass(argv: list[str]) -> None:
    finding = evaluate_command(FLOOR, argv)
    assert finding.decision == "deny", finding
    assert finding.rule is not None and finding.rule.id.startswith("floor-")
    assert finding.rule.source == "builtin"


@pytest.mark.parametrize("line", FLOOR_SHELL_BYPASSES)
def test_floor_refuses_every_published_shell_bypass(line: str) -> None:
    finding = evaluate_command(FLOOR, [line], shell=True)
    assert finding.decision == "deny", finding


ORDINARY_ARGV = [
    ["npm", "run", "dev"],
    ["python3", "-m", "http.server", "8000"],
    ["python3", "-c", "print('hello world')"],
    ["sh", "-c", 'echo "$A-$B" $(pwd); exec sleep 30'],
    ["sh", "-c", "npm run build 2>&1 | tee build.log"],
    ["ls", "-la"],
    ["rm", "-rf", "build"],
    ["rm", "-rf", "./node_modules"],
    ["rm", "-r", "/tmp/scratch"],
    ["rm", "-f", "/"],  # not recursive: rm refuses a folder anyway
    ["echo", "sudo"],
    ["sudoku"],
    ["mkfifo", "p"],
    ["timeout", "5", "sleep", "1"],
    ["env", "FOO=1", "printenv", "FOO"],
    ["git", "log", "--oneline"],
]


@pytest.mark.parametrize("argv", ORDINARY_ARGV, ids=lambda a: " ".join(a))
def test_ordinary_commands_are_untouched(argv: list[str], rules: Policy) -> None:
    for policy in (FLOOR, rules):
        finding = evaluate_command(policy, argv)
        assert finding.decision == "allow", finding
        assert finding.rule is None or finding.rule.decision == "allow"


@pytest.mark.parametrize(
    "line",
    [
        "npm run dev",
        "cd web && npm start",
        "for f in *.py; do echo $f; done",
        "echo 'sudo is a word here'" and "echo hi",
        "cat <<EOF > x",
        "$HOME/bin/tool --flag",
        "ls | grep -v x | wc -l",
    ],
)
def test_ordinary_shell_lines_are_untouched(line: str) -> None:
    assert decide(FLOOR, line, env={"HOME": "/home/u", "PATH": "/bin"}) == "allow"


# ------------------------------------------------------------- the person's rules
RULE_CASES = [  # Codex-style: (rule id, commands it must catch, commands it must not)
    (
        "no-deploy",
        [
            ["npm", "run", "deploy"],
            ["/usr/local/bin/npm", "run", "deploy:prod"],
            ["env", "NODE_ENV=production", "npm", "run", "deploy"],
            ["sh", "-c", "npm ci && npm run deploy"],
            ["bash", "-c", "echo $(npm run deploy)"],
            ["timeout", "60", "npm", "run", "deploy"],
        ],
        [["npm", "run", "dev"], ["npm", "run"], ["npm", "test", "deploy"]],
    ),
    ("no-iptables", [["/usr/sbin/iptables", "-F"], ["sh", "-c", "/sbin/iptables -F"]], []),
    ("db-reset", [["npm", "run", "db:reset"], ["nohup", "npm", "run", "db:reset"]], []),
]


@pytest.mark.parametrize(("rule_id", "caught", "passed"), RULE_CASES)
def test_rules_catch_through_wrappers_and_shells(
    rules: Policy, rule_id: str, caught: list[list[str]], passed: list[list[str]]
) -> None:
    for argv in caught:
        finding = evaluate_command(rules, argv)
        assert finding.rule is not None and finding.rule.id == rule_id, (argv, finding)
        assert finding.rule.source.endswith(
            "policy.toml:" + str(finding.rule.source.split(":")[-1])
        )
    for argv in passed:
        assert evaluate_command(rules, argv).decision == "allow", argv


def test_refusal_names_file_line_reason_and_evaluated_argv(rules: Policy) -> None:
    finding = evaluate_command(rules, ["sh", "-c", "cd app; npm run deploy"])
    public = finding.public()
    assert public["decision"] == "deny"
    assert public["rule"] == "no-deploy"
    assert str(public["source"]).endswith("policy.toml:5")  # the line of its [[rule]]
    assert public["reason"] == "Production deploys are the person's job."
    assert public["argv"] == ["npm", "run", "deploy"]


def test_an_allow_rule_never_lifts_a_deny_found_inside(rules: Policy) -> None:
    assert evaluate_command(rules, ["sh", "-c", "sudo x"]).decision == "deny"  # allow-sh
    assert evaluate_command(rules, ["sh", "-c", "npm run db:reset"]).decision == "ask"
    assert evaluate_command(rules, ["sh", "-c", "npm run deploy; npm run db:reset"]).rule.id == (
        "no-deploy"
    )


def test_default_and_shell_settings(tmp_path: Path) -> None:
    strict = policy_from(
        tmp_path,
        'default = "deny"\nshell = "ask"\n[[rule]]\nid = "dev"\nmatch = ["npm", "run", "dev"]\n'
        'decision = "allow"\n',
    )
    assert decide(strict, ["npm", "run", "dev"]) == "allow"
    assert decide(strict, ["timeout", "9", "npm", "run", "dev"]) == "allow"
    assert decide(strict, ["npm", "test"]) == "deny"
    assert evaluate_command(strict, ["npm", "test"]).rule.source.endswith("policy.toml:1")
    assert decide(strict, "npm run dev") == "ask"  # shell = "ask": an allow rule cannot lift it
    assert decide(strict, ["sh", "-c", "npm run dev"]) == "ask"
    assert decide(strict, ["sh", "-c", "npm run dev; npm test"]) == "deny"


def test_dynamic_program_is_asked_not_guessed() -> None:
    assert decide(FLOOR, "a=sudo; $a x", env={}) == "ask"
    assert decide(FLOOR, "$(echo sudo) x", env={}) == "ask"
    assert decide(FLOOR, "$TOOL x", env={"TOOL": "sudo"}) == "deny"
    assert decide(FLOOR, "$TOOL x", env={"TOOL": "ls"}) == "allow"


def test_roots(tmp_path: Path) -> None:
    inside = tmp_path / "code"
    inside.mkdir()
    policy = policy_from(tmp_path, f'roots = ["{inside}"]\n')
    assert decide(policy, ["ls"], cwd=str(inside)) == "allow"
    outside = evaluate_command(policy, ["ls"], cwd=str(tmp_path))
    assert outside.decision == "deny" and outside.rule.id == "roots"
    sibling = tmp_path / "code-other"  # a prefix of the name is not inside
    sibling.mkdir()
    assert decide(policy, ["ls"], cwd=str(sibling)) == "deny"


# Found by the conformance audit: wrapper options, wrappers that run a shell line, shell
# forms that run a word as a command, brace expansion, a shell fed its commands on stdin,
# the machine stopped through systemctl, and the home folder deleted by a relative path.
AUDIT_ARGV_BYPASSES = [
    ["timeout", "-s", "KILL", "5", "sudo", "x"],
    ["nice", "-n", "5", "sudo"],
    ["taskset", "-c", "0", "sudo"],
    ["taskset", "--cpu-list", "0", "sudo", "x"],
    ["chrt", "-f", "10", "sudo"],
    ["ionice", "-c", "3", "sudo"],
    ["stdbuf", "-oL", "sudo"],
    ["env", "-u", "X", "-i", "A=B", "sudo"],
    ["env", "-", "sudo", "x"],
    ["xargs", "-n1", "sudo"],
    ["xargs", "-i", "sudo", "x"],
    ["xargs", "--replace", "sudo", "x"],
    ["xargs", "-e", "sudo", "x"],
    ["flock", "/tmp/lock", "sudo", "x"],
    ["flock", "-w", "5", "/tmp/lock", "sudo", "x"],
    ["flock", "/tmp/lock", "-c", "sudo x"],
    ["watch", "sudo x"],
    ["watch", "-n", "1", "ls; sudo x"],
    ["watch", "-d", "sudo", "x"],
    ["script", "-qc", "sudo x", "/dev/null"],
    ["script", "--command", "sudo x"],
    ["busybox", "reboot"],
    ["busybox", "su"],
    ["systemctl", "poweroff"],
    ["systemctl", "--force", "reboot"],
    ["/bin/systemctl", "halt"],
    ["systemctl", "start", "reboot.target"],
    ["loginctl", "poweroff"],
    ["telinit", "6"],
    ["SUDO", "x"],  # a case-insensitive file system (macOS) runs sudo
    ["Sudo", "x"],
    ["rm", "-rf", str(Path.home().parent)],  # holds the home folder
    ["awk", 'BEGIN { system("sudo x") }'],
    ["gawk", "-F:", "-v", "a=1", '{ system("sudo " $1) }', "/etc/passwd"],
]

AUDIT_SHELL_BYPASSES = [
    "coproc sudo x",
    "time -p sudo x",
    "function f { sudo x; }",
    "trap 'sudo x' EXIT",
    "alias s=sudo; s x",
    "{sudo,x}",
    "su{do,} x",
    "{s..s}udo x",
    "echo 'sudo x' | sh",
    "printf 'sudo x' | bash -s",
    "bash <<< 'sudo x'",
    "echo \"import os; os.system('sudo x')\" | python3",
    "flock /tmp/l sudo x",
    "watch 'sudo x'",
    "busybox reboot",
    "systemctl reboot",
    "SUDO x",
]


@pytest.mark.parametrize("argv", AUDIT_ARGV_BYPASSES, ids=lambda a: " ".join(a))
def test_floor_refuses_the_audits_argv_bypasses(argv: list[str]) -> None:
    finding = evaluate_command(FLOOR, argv)
    assert finding.decision == "deny", finding
    assert finding.rule is not None and finding.rule.id.startswith("floor-")


@pytest.mark.parametrize("line", AUDIT_SHELL_BYPASSES)
def test_floor_refuses_the_audits_shell_bypasses(line: str) -> None:
    finding = evaluate_command(FLOOR, [line], shell=True, env={"HOME": "/home/u"})
    assert finding.decision == "deny", finding


@pytest.mark.parametrize(
    "line",
    [
        "echo {a,b}.txt",
        "cat notes.txt | sh -n",
        "echo hi | tee out.log",
        "trap 'rm -f $tmp' EXIT",
        "alias ll='ls -la'",
        "time -p make",
        "function build { make; }; build",
        "systemctl --user status web",
        "watch -n 5 'ls -la'",
        "flock /tmp/l npm run build",
        "busybox ls",
        "printf 'ls\\n' | sh",
        "awk -F: '{ print $1 }' /etc/passwd",
    ],
)
def test_the_audits_ordinary_shell_lines_are_untouched(line: str) -> None:
    assert decide(FLOOR, line, env={"HOME": "/home/u"}) == "allow"


def test_recursive_rm_of_the_home_folder_by_a_relative_path(tmp_path: Path) -> None:
    home = str(Path.home())
    assert decide(FLOOR, ["rm", "-rf", "."], cwd=home) == "deny"
    assert decide(FLOOR, ["rm", "-rf", "*"], cwd=home) == "deny"
    assert decide(FLOOR, ["rm", "-rf", ".."], cwd=str(Path(home) / "code")) == "deny"
    assert decide(FLOOR, "cd ~ && rm -rf .", cwd=str(tmp_path)) == "deny"
    assert decide(FLOOR, "cd / && rm -rf *", cwd=str(tmp_path)) == "deny"
    assert decide(FLOOR, "cd; rm -r ./", cwd=str(tmp_path)) == "deny"
    assert decide(FLOOR, ["rm", "-rf", "."], cwd=str(tmp_path)) == "allow"
    assert decide(FLOOR, ["rm", "-rf", "build"], cwd=home) == "allow"
    assert decide(FLOOR, "cd build && rm -rf *", cwd=str(tmp_path)) == "allow"
    assert decide(FLOOR, ["rm", "-rf", "*"], cwd=str(tmp_path)) == "allow"


def test_a_deny_rule_matches_the_program_in_any_case_an_allow_rule_only_exactly(
    tmp_path: Path,
) -> None:
    rule = '[[rule]]\nid = "{0}"\nmatch = ["{1}"]\ndecision = "{2}"\n'
    denying = policy_from(tmp_path, rule.format("no-dd", "dd", "deny"), "deny.toml")
    assert decide(denying, ["DD", "if=/dev/zero"]) == "deny"
    assert decide(denying, ["/bin/Dd"]) == "deny"
    allowing = policy_from(
        tmp_path, 'default = "deny"\n' + rule.format("ok-make", "make", "allow"), "allow.toml"
    )
    assert decide(allowing, ["make"]) == "allow"
    assert decide(allowing, ["MAKE"]) == "deny"  # the default: an allow rule is exact


def test_floor_off_lifts_only_what_it_names(tmp_path: Path) -> None:
    policy = policy_from(tmp_path, 'floor_off = ["sudo", "rm"]\n')
    assert decide(policy, ["sudo", "x"]) == "allow"
    assert decide(policy, ["rm", "-rf", "/"]) == "allow"
    assert decide(policy, ["doas", "x"]) == "deny"


# ------------------------------------------------------------------ input to a shell
def test_input_to_a_shell_is_each_line_a_command(rules: Policy) -> None:
    assert evaluate_input(rules, ["bash"], "ls\nsudo x\n").decision == "deny"
    assert evaluate_input(rules, ["env", "bash", "-i"], "npm run deploy\n").decision == "deny"
    assert evaluate_input(rules, ["bash"], "ls -la\n").decision == "allow"
    assert evaluate_input(rules, ["cat"], "sudo x\n") is None  # data, not commands


def test_input_to_a_repl_has_its_literals_checked(rules: Policy) -> None:
    # DesktopCommander #552: python3 -i, then os.system through the input tool
    finding = evaluate_input(rules, ["python3", "-i"], "import os; os.system('dd if=/dev/zero')\n")
    assert finding is not None and finding.decision == "deny" and finding.rule.id == "no-dd"
    assert evaluate_input(rules, ["python3", "-i"], "print(1 + 1)\n") is None


# ------------------------------------------------------------------ files
@pytest.mark.parametrize(
    ("text", "line", "fault"),
    [
        ('version = 1\ndefault = "alow"\n', 2, "allow, ask or deny"),
        ("version = 1\n[[rule]]\nid = 'x'\nmatch = 'npm'\ndecision = 'deny'\n", 4, "match"),
        ("version = 1\n\n[[rule]]\nmatch = ['x']\ndecision = 'deny'\n", 3, "needs an id"),
        ("version = 1\n[[rule\n", 2, ""),
        ("version = 1\nfrobnicate = 3\n", 2, "unknown key 'frobnicate'"),
        ("[limits]\nmemory = 'lots'\n", 2, "memory"),
        ("[redact]\npatterns = [{ id = 'a', regex = '(' }]\n", 2, "bad regex"),
        ("version = 2\n", 1, "version 2"),
        (
            "[[rule]]\nid = 'd'\nmatch = ['npm', 'run', 'deploy']\ndecision = 'deny'\n"
            "examples = ['npm run dev']\n",
            5,
            "does not match its example",
        ),
    ],
)
def test_broken_file_names_file_line_and_fault(
    tmp_path: Path, text: str, line: int, fault: str
) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(text)
    source = PolicySource(path)
    for _ in range(2):  # every check, not only the first
        with pytest.raises(PolicyError) as caught:
            source.current()
        assert f"policy.toml:{line}:" in str(caught.value)
        assert fault in str(caught.value)


def test_file_reread_when_it_changes(tmp_path: Path) -> None:
    import os

    path = tmp_path / "policy.toml"
    source = PolicySource(path)
    assert decide(source.current(), ["npm", "run", "deploy"]) == "allow"  # no file: floor
    path.write_text(USER_RULES)
    assert decide(source.current(), ["npm", "run", "deploy"]) == "deny"
    path.write_text("[[rule\n")
    os.utime(path, ns=(1, 1))
    with pytest.raises(PolicyError):
        source.current()
    path.unlink()
    assert decide(source.current(), ["npm", "run", "deploy"]) == "allow"


def test_project_file_only_tightens(tmp_path: Path, rules: Policy) -> None:
    project = tmp_path / "proj"
    (project / ".process-mcp").mkdir(parents=True)
    (project / ".process-mcp" / "policy.toml").write_text(
        'default = "allow"\nshell = "ask"\nfloor_off = ["sudo"]\n'
        "[[rule]]\nid = 'ok-deploy'\nmatch = ['npm', 'run', 'deploy']\ndecision = 'allow'\n"
        "[[rule]]\nid = 'no-migrate'\nmatch = ['npm', 'run', 'migrate']\ndecision = 'deny'\n"
        "[limits]\nmemory = '1G'\nmax_running = 100\n[redact]\nenabled = false\n"
    )
    base = (
        user_policy(read(tmp_path / "policy.toml"))
        if (tmp_path / "policy.toml").exists()
        else rules
    )
    merged = tighten(base, read(project / ".process-mcp" / "policy.toml"))
    assert decide(merged, ["npm", "run", "deploy"]) == "deny"  # its allow rule ignored
    assert decide(merged, ["npm", "run", "migrate"]) == "deny"  # its deny rule kept
    assert decide(merged, ["sudo", "x"]) == "deny"  # floor_off ignored
    assert decide(merged, "ls") == "ask"  # a stricter shell setting kept
    assert merged.limits.memory == 1024**3
    assert merged.redact.enabled
    joined = "\n".join(merged.warnings)
    for ignored in ("ok-deploy", "floor_off", "enabled = false"):
        assert ignored in joined
    source = PolicySource(tmp_path / "policy.toml")
    assert decide(source.current(str(project)), ["npm", "run", "migrate"]) == "deny"


def test_a_project_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    import os

    project = tmp_path / "proj"
    (project / ".process-mcp").mkdir(parents=True)
    path = project / ".process-mcp" / "policy.toml"
    source = PolicySource(tmp_path / "policy.toml")
    assert decide(source.current(str(project)), ["make"]) == "allow"
    path.write_text("[[rule]]\nid = 'no-make'\nmatch = ['make']\ndecision = 'deny'\n")
    assert decide(source.current(str(project)), ["make"]) == "deny"
    path.write_text("[[rule]]\nid = 'no-make'\nmatch = ['make']\ndecision = 'dney'\n")
    os.utime(path, ns=(1, 1))
    with pytest.raises(PolicyError, match=r"policy\.toml:4: decision"):
        source.current(str(project))
    path.unlink()
    assert decide(source.current(str(project)), ["make"]) == "allow"


def test_roots_follow_symlinks(tmp_path: Path) -> None:
    inside, outside = tmp_path / "code", tmp_path / "elsewhere"
    inside.mkdir()
    outside.mkdir()
    (inside / "link").symlink_to(outside)
    policy = policy_from(tmp_path, f'roots = ["{inside}"]\n')
    assert decide(policy, ["ls"], cwd=str(inside / "link")) == "deny"  # really outside
    (outside / "back").symlink_to(inside)
    assert decide(policy, ["ls"], cwd=str(outside / "back")) == "allow"  # really inside
