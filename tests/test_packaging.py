"""pyproject.toml and environment.yml list the same packages with the same version constraints."""

import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _pyproject() -> dict[str, str]:
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    reqs = data["project"]["dependencies"] + data["project"]["optional-dependencies"]["dev"]
    return dict(_split(r) for r in reqs)


def _environment() -> dict[str, str]:
    out = {}
    text = (ROOT / "environment.yml").read_text()
    deps = text.split("dependencies:", 1)[1]  # the channels list above it is not packages
    for line in deps.splitlines():
        m = re.match(r"^\s*-\s+([^#\s].*?)\s*$", line)
        if not m or m.group(1).startswith(("-e", "pip", "python=")) or m.group(1) == "pip":
            continue
        name, spec = _split(m.group(1))
        out[name] = spec
    out.pop("pip", None)
    return out


def test_environment_yml_matches_pyproject():
    py, env = _pyproject(), _environment()
    assert set(py) == set(env), f"only in pyproject: {set(py) - set(env)}; only in environment.yml: {set(env) - set(py)}"
    for name in py:
        assert py[name] == env[name], f"{name}: pyproject says {py[name]!r}, environment.yml says {env[name]!r}"


def test_torch_and_trl_are_pinned():
    py = _pyproject()
    assert py["torch"] == "==2.13.0"
    assert py["trl"].startswith("==1.16")


def test_console_script_and_python_floor():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert data["project"]["scripts"]["grpo-lab"] == "grpo_lab.cli:main"
    assert data["project"]["requires-python"] == ">=3.11"
    assert data["project"]["name"] == "grpo-lab"


def test_ci_runs_the_readme_test_command():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make demo" in readme and "make test" in readme
