"""The readme's promises: two set-up commands at the top, and CI runs exactly the second."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def readme_commands():
    lines = (ROOT / "readme.md").read_text().splitlines()
    commands, inside = [], False
    for line in lines:
        if line.startswith("```"):
            inside = not inside
            continue
        if inside:
            commands.append(line)
        if len(commands) == 2 and not inside:
            break
    return commands


def test_ci_runs_the_readme_test_command():
    main_job, test_command = readme_commands()
    assert "pytest" in test_command and "pytest" not in main_job
    for command in (main_job, test_command):   # a virtual environment of the project's, never the system's pip
        assert command.startswith("python3 -m venv --system-site-packages .venv && . .venv/bin/activate && ")
    assert "ruff check ." in test_command and "&& mypy &&" in test_command
    ci = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith(("#", "set ", "cd "))]
    assert ci == [test_command]


def test_top_level_layout():
    expected = {"nnocc", "nnocc_raw", "nnocc_preprocessed", "nnocc_results", "tests", "setup.py", "readme.md",
                "benchmarks", "container", "ruff.toml", "mypy.ini"}
    present = {p.name for p in ROOT.iterdir() if not p.name.startswith(".") and not p.name.endswith(".egg-info")}
    assert expected - {"container"} <= present
    assert present <= expected | {"build", "dist"}


def test_every_command_is_documented_in_the_readme():
    from nnocc.cli.commands import COMMANDS
    text = (ROOT / "readme.md").read_text()
    assert [name for name in COMMANDS if f"nnocc_{name}" not in text] == []


def test_the_container_installs_the_torch_the_readme_installs():
    pinned = set(re.findall(r"torch==([0-9.]+)", "\n".join(readme_commands())))
    dockerfile = (ROOT / "container" / "Dockerfile").read_text()
    assert len(pinned) == 1 and re.findall(r"^ARG TORCH_VERSION=([0-9.]+)$", dockerfile, flags=re.M) == list(pinned)
