"""The notebooks' Colab install cell, run in a simulated Colab.

A fresh virtual environment (no system site-packages) stands in for a Colab runtime: it holds a torch that
is not the course's (2.11.0, Colab's as of 2026-08) and transformers 5.15, as distribution records without
code, which is all pip looks at. The cell's own code runs there with ``google.colab`` in ``sys.modules``
and the repository URL pointed at a wheel built from this checkout; ``PIP_DRY_RUN``/``PIP_REPORT`` (pip reads every
option from a ``PIP_<NAME>`` variable) make pip only report what it would install. Then the lock's real
CPU torch goes in, and the package must import, report its environment and run notebook 00 in test mode.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tools import colab_badges

ROOT = Path(__file__).resolve().parents[1]

# A fresh virtual environment, a wheel build and pip installs: the integration tier.
pytestmark = [pytest.mark.full, pytest.mark.timeout(1800)]

NOTEBOOK_FOLDERS = ("notebooks", "solutions", "exercises")
# What Colab had preinstalled (googlecolab/backend-info, 2026-08); no code, only what pip reads.
STAND_INS = {"torch": "2.11.0", "transformers": "5.15.0"}


def _install_cell_of(path: Path) -> str:
    nb = json.loads(path.read_text())
    return next(
        "".join(c["source"])
        for c in nb["cells"]
        if c["cell_type"] == "code" and colab_badges.MARKER in "".join(c["source"])
    )


def test_every_notebook_has_the_generated_install_cell():
    """notebooks/ and solutions/ come from tools/colab_badges.py, exercises/ from solutions/."""
    for folder in NOTEBOOK_FOLDERS:
        for path in sorted((ROOT / folder).glob("*.ipynb")):
            assert _install_cell_of(path) == colab_badges.install_cell(path.name), (
                f"{path}: install cell is out of date: run `python tools/colab_badges.py` and `make exercises`"
            )


def test_install_cell_asks_for_extras_only_where_needed():
    for path in sorted((ROOT / "notebooks").glob("*.ipynb")):
        cell = _install_cell_of(path)
        assert ("grpo-lab[lora] @" in cell) == (path.name == "06_capstone_gsm8k.ipynb"), path.name
        assert colab_badges.PIP_SOURCE in cell and '"-q"' not in cell
    assert colab_badges.PIP_SOURCE.startswith(f"git+https://github.com/{colab_badges.REPO}@")


# --------------------------------------------------------------------------------------------------
# The simulated Colab runtime
# --------------------------------------------------------------------------------------------------


def _site_packages(env: Path) -> Path:
    return next((env / "lib").glob("python3*/site-packages"))


def _stand_in(site: Path, name: str, version: str) -> None:
    """A distribution record with no code: pip and importlib.metadata see ``name`` at ``version``."""
    info = site / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    (info / "INSTALLER").write_text("pip\n")
    (info / "RECORD").write_text("".join(f"{info.name}/{f},,\n" for f in ("METADATA", "INSTALLER", "RECORD")))


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """(python of a fresh venv with the stand-ins, a wheel of this checkout, a scratch folder)."""
    tmp = tmp_path_factory.mktemp("colab")
    env = tmp / "venv"
    venv.create(env, with_pip=True, system_site_packages=False)
    for name, version in STAND_INS.items():
        _stand_in(_site_packages(env), name, version)
    # A wheel of this checkout stands in for the GitHub URL. Built once, outside the simulated runtime: the
    # PIP_DRY_RUN below would reach pip's build-isolation subprocess too and leave it without setuptools.
    src = tmp / "src"
    src.mkdir()
    for f in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, src / f)
    shutil.copytree(ROOT / "grpo_lab", src / "grpo_lab", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp / "dist"), str(src)],
        check=True,
        capture_output=True,
        cwd=tmp,
    )
    src = next((tmp / "dist").glob("grpo_lab-*.whl"))
    return env / "bin" / "python", src, tmp


def _run_cell(python: Path, cell: str, tmp: Path, **env) -> subprocess.CompletedProcess:
    """Run ``cell`` as Colab would: in ``python``, with ``google.colab`` already imported."""
    script = tmp / "run_cell.py"
    script.write_text(
        "import sys, types\nsys.modules['google.colab'] = types.ModuleType('google.colab')\n"
        f"exec(compile({cell!r}, 'install-cell', 'exec'), {{'__name__': '__main__'}})\n"
    )
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "COLAB_"))}
    full_env.update(env)
    return subprocess.run([str(python), str(script)], capture_output=True, text=True, env=full_env, cwd=tmp)


def _version(python: Path, dist: str) -> str:
    out = subprocess.run(
        [str(python), "-c", f"import importlib.metadata as m; print(m.version({dist!r}))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return out.stdout.strip()


@pytest.mark.slow
@pytest.mark.xdist_group("colab")
def test_install_cell_keeps_colabs_torch(colab):
    """pip, asked by the cell of the notebook with an extra, installs grpo-lab + peft and leaves torch alone."""
    python, src, tmp = colab
    cell = colab_badges.install_cell("06_capstone_gsm8k.ipynb").replace(colab_badges.PIP_SOURCE, src.as_uri())
    report = tmp / "report.json"
    res = _run_cell(python, cell, tmp, PIP_DRY_RUN="1", PIP_REPORT=str(report))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "Collecting" in res.stdout, "pip's progress lines must reach the notebook"
    would = {
        item["metadata"]["name"].lower().replace("_", "-"): item["metadata"]["version"]
        for item in json.loads(report.read_text())["install"]
    }
    assert "torch" not in would, f"pip would replace Colab's torch with {would.get('torch')}"
    assert "transformers" not in would, f"pip would replace Colab's transformers with {would.get('transformers')}"
    assert _version(python, "torch") == "2.11.0"
    assert "jupyterlab" not in would and "notebook" not in would, "Colab must not get a second notebook server"
    assert "peft" in would, "the capstone's cell asks for the [lora] extra"
    assert would["grpo-lab"] and would["trl"].startswith("1.16.")


@pytest.mark.slow
@pytest.mark.xdist_group("colab")
def test_locked_install_runs_notebook_00_and_the_cell_stops_on_a_cpu_torch_under_a_gpu(colab):
    python, src, tmp = colab
    # The lock's torch and transformers replace the stand-ins (torch is a local CPU wheel on the course's
    # machines). --no-compile: byte-compiling torch and transformers up front is most of an install's CPU time.
    pip = [
        str(python),
        "-m",
        "pip",
        "install",
        "--no-compile",
        "--progress-bar",
        "off",
        "-c",
        str(ROOT / "constraints.txt"),
    ]
    subprocess.run(
        [*pip, "torch", "transformers", str(src), "nbclient", "nbformat", "ipykernel"], check=True, capture_output=True
    )
    env = dict(os.environ, GRPO_LAB_CACHE=str(tmp / "cache"), HF_HUB_OFFLINE="1")
    code = (
        "import json, grpo_lab; from grpo_lab.jobs import environment_report; print(json.dumps(environment_report()))"
    )
    rep = json.loads(
        subprocess.run([str(python), "-c", code], capture_output=True, text=True, check=True, env=env, cwd=tmp)
        .stdout.strip()
        .splitlines()[-1]
    )
    assert rep["torch"].startswith("2.13.0") and rep["trl"].startswith("1.16.") and "warning" not in rep
    assert "grpo_lab/data/gsm8k" in rep["local GSM8K"], "the GSM8K copy ships inside the package"

    nb_runner = (
        "import nbformat, sys; from nbclient import NotebookClient\n"
        "nb = nbformat.read(sys.argv[1], as_version=4)\n"
        "NotebookClient(nb, timeout=600, kernel_name='python3').execute()\n"
        "print('cells run:', sum(c.cell_type == 'code' for c in nb.cells))\n"
    )
    nb_env = dict(env, GRPO_LAB_TEST_MODE="1", MPLBACKEND="Agg", OMP_NUM_THREADS="1", GRPO_LAB_THREADS="1")
    res = subprocess.run(
        [str(python), "-c", nb_runner, str(ROOT / "notebooks" / "00_setup.ipynb")],
        capture_output=True,
        text=True,
        env=nb_env,
        cwd=tmp,
    )
    assert res.returncode == 0 and "cells run:" in res.stdout, res.stdout[-3000:] + res.stderr[-3000:]

    # A GPU runtime whose torch cannot see it: the cell must stop, not let training fall back to the CPU.
    cell = colab_badges.install_cell("00_setup.ipynb")
    fake = tmp / "fakebin"
    fake.mkdir()
    smi = fake / "nvidia-smi"
    path = f"{fake}{os.pathsep}{os.environ['PATH']}"
    for gpu_env in ({"COLAB_GPU": "1"}, {"PATH": path}):
        smi.write_text("#!/bin/sh\necho 'GPU 0: Tesla T4 (UUID: GPU-0)'\n")
        smi.chmod(0o755)
        res = _run_cell(python, cell, tmp, **gpu_env)
        assert res.returncode != 0 and "This runtime has a GPU" in res.stderr, (gpu_env, res.stderr[-2000:])
        assert "Disconnect and delete runtime" in res.stderr
    # A CPU runtime whose nvidia-smi finds no driver is not a GPU runtime: the cell finishes quietly.
    smi.write_text("#!/bin/sh\necho 'NVIDIA-SMI has failed: no driver.'\nexit 9\n")
    res = _run_cell(python, cell, tmp, PATH=path)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
