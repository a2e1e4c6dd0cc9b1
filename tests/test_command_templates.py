"""Command templates: a value is one literal word wherever it stands; a template that would run
a value as shell code is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from genetune.loading import CommandObjective, load_objective

HOSTILE = ["$(touch pwned)", "`touch pwned`", "'; touch pwned; '", '"; touch pwned; "', "a b\\", "$HOME", "x'\"y"]
TEMPLATES = [
    "printf '%s' {v} > out; echo 1",
    'printf "%s" "{v}" > out; echo 1',
    "printf '%s' '{v}' > out; echo 1",
    'printf "%s" "-D{v}" > out && echo 1',
    "printf '%s' '-D'{v}\"\" > out; echo 1",
    "sh -c 'printf %s \"$1\" > out; echo 1' sh {v}",
]


@pytest.mark.parametrize("template", TEMPLATES)
@pytest.mark.parametrize("value", HOSTILE)
def test_a_value_never_runs_as_code(tmp_path: Path, template: str, value: str) -> None:
    objective = CommandObjective(template, cwd=str(tmp_path))
    assert objective({"v": value}) == 1.0
    assert not (tmp_path / "pwned").exists()
    written = (tmp_path / "out").read_text()
    assert written.endswith(value) and written in (value, f"-D{value}")


@pytest.mark.parametrize(
    "template",
    ['sh -c "./bench --flag {flag}"', "bash -ec './bench {flag}'", "eval ./bench {flag}", "nice /bin/sh -c './bench {flag}' && echo 1"],
)
def test_a_placeholder_in_a_shell_script_is_refused(template: str) -> None:
    with pytest.raises(ValueError, match=r"placeholder \{flag\} is inside a script .* pass it as an argument"):
        load_objective(template)


def test_unbalanced_quotes_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be parsed as a shell command"):
        CommandObjective("./bench '{flag}")


def test_a_knocked_out_value_disappears_and_shell_features_still_work(tmp_path: Path) -> None:
    objective = CommandObjective("echo {a} {b} | wc -w", cwd=str(tmp_path))
    assert objective({"a": "-O2"}) == 1.0
    assert objective({"a": "-O2", "b": 7}) == 2.0


def test_a_background_process_does_not_hold_the_result(tmp_path: Path) -> None:
    """The command returns while `sleep` it left runs on: its output is read at once."""
    import time

    started = time.monotonic()
    pid_file = tmp_path / "pid"
    assert CommandObjective(f"sleep 30 & echo $! > {pid_file}; echo {{v}}")({"v": 5}) == 5.0
    assert time.monotonic() - started < 25
    import os
    import signal

    os.kill(int(pid_file.read_text()), signal.SIGKILL)
