"""What a rendered notebook keeps of its outputs: small PNG figures, tidy streams, no machine paths.

Each function takes the outputs of one cell (nbformat dicts) and returns new ones, so the order of the passes
is visible in one place (``tidy_outputs``): widget snapshots first (they add images and text lines), then
streams are merged, then figures are re-encoded, then paths are scrubbed from every text.
"""

from __future__ import annotations

import base64
import io
import os
import re
import site
import sys
import tempfile
from pathlib import Path

# A figure wider than this is scaled down: legible on a laptop screen and in GitHub's viewer, and a 2x
# "retina" figure stores four times the pixels for no gain in a page that is read, not zoomed.
MAX_WIDTH_PX = 900
# Richer alternatives of the same figure: GitHub and Colab show the PNG, so these only add weight.
DROPPED_WITH_PNG = ("image/svg+xml", "application/pdf")
TEXT_MIMES = ("text/plain", "text/html", "text/markdown", "text/latex", "application/json")


def shrink_png(b64: str, max_width: int = MAX_WIDTH_PX) -> tuple[str, tuple[int, int]]:
    """Re-encode a base64 PNG: at most ``max_width`` pixels wide (aspect kept), 256-colour palette, optimized.

    Returns the new base64 text and its ``(width, height)``. The palette version is kept only when it is smaller
    than a plain optimized re-encoding (a photo-like image can grow under quantisation). Deterministic: the same
    input gives the same bytes, and Pillow writes no timestamp or software chunk.
    """
    from PIL import Image

    img = Image.open(io.BytesIO(base64.b64decode(b64)))
    img.load()
    if img.mode not in ("RGB", "RGBA", "L", "P"):
        img = img.convert("RGBA")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode == "RGBA" and img.getextrema()[3][0] == 255:
        img = img.convert("RGB")  # matplotlib's figures are opaque: the alpha channel is dead weight
    if img.width > max_width:
        img = img.resize((max_width, max(1, round(img.height * max_width / img.width))), Image.LANCZOS)
    candidates = []
    for variant in (img, _palette(img)):
        buf = io.BytesIO()
        variant.save(buf, format="PNG", optimize=True)
        candidates.append(buf.getvalue())
    best = min(candidates, key=len)
    return base64.b64encode(best).decode("ascii"), img.size


def _palette(img):
    from PIL import Image

    if img.mode == "RGBA":
        return img.quantize(colors=256, method=Image.Quantize.FASTOCTREE)
    if img.mode == "L":
        return img
    return img.quantize(colors=256, method=Image.Quantize.MEDIANCUT)


def shrink_figures(outputs: list[dict], max_width: int = MAX_WIDTH_PX) -> list[dict]:
    """Every ``image/png`` re-encoded by ``shrink_png``; SVG and PDF alternatives of a PNG dropped.

    A display width stored in the output's metadata (matplotlib's retina figures have one) is capped at the
    new pixel width, so the figure does not show blurred up.
    """
    out = []
    for o in outputs:
        data = o.get("data")
        if o.get("output_type") in ("display_data", "execute_result") and data and "image/png" in data:
            o = {**o, "data": {k: v for k, v in data.items() if k not in DROPPED_WITH_PNG}}
            png = data["image/png"]
            o["data"]["image/png"], (w, h) = shrink_png("".join(png) if isinstance(png, list) else png, max_width)
            meta = dict(o.get("metadata") or {})
            shown = dict(meta.get("image/png") or {})
            if shown.get("width", 0) > w:
                shown["height"] = round(shown.get("height", h) * w / shown["width"])
                shown["width"] = w
                meta["image/png"] = shown
            o["metadata"] = meta
        out.append(o)
    return out


def final_line_state(text: str) -> str:
    """``text`` as a terminal would leave it: each line keeps what follows its last carriage return.

    A progress line rewritten in place (``"10%\\r50%\\r100%"``) becomes ``"100%"``; a trailing ``\\r`` (the
    line is about to be rewritten) keeps the last non-empty state.
    """
    lines = text.replace("\r\n", "\n").split("\n")
    kept = []
    for line in lines:
        parts = line.split("\r")
        nonempty = [p for p in parts if p]
        kept.append(parts[-1] if parts[-1] else (nonempty[-1] if nonempty else ""))
    return "\n".join(kept)


def merge_streams(outputs: list[dict]) -> list[dict]:
    """Consecutive outputs of one stream (stdout or stderr) merged into one, carriage returns resolved.

    Not nbconvert's ``CoalesceStreamsPreprocessor``, which merges the same way but resolves carriage returns
    differently: it keeps ``"\\r\\n"`` and a trailing ``"\\r"`` (a progress line about to be rewritten), keeps
    empty streams, and turns ``"a\\r\\r\\n"`` into ``"\\r\\n"``, losing the line's last state."""
    out: list[dict] = []
    for o in outputs:
        if o.get("output_type") == "stream":
            text = "".join(o["text"]) if isinstance(o["text"], list) else o["text"]
            if out and out[-1].get("output_type") == "stream" and out[-1]["name"] == o["name"]:
                out[-1] = {**out[-1], "text": out[-1]["text"] + text}
                continue
            o = {**o, "text": text}
        out.append(o)
    for o in out:
        if o.get("output_type") == "stream":
            o["text"] = final_line_state(o["text"])
    return [o for o in out if o.get("output_type") != "stream" or o["text"]]


def machine_paths(repo_root: str | Path | None = None, extra: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """``(path, placeholder)`` pairs, longest path first, for the folders that name this machine.

    The repository root, the Python installation (``sys.prefix``, ``sys.base_prefix``, site-packages), the
    temporary folder and the home folder, each also under its resolved name (a symlinked ``/tmp`` on macOS).
    Longest first so that a site-packages inside a venv inside the repository gets the most specific name.
    """
    named: dict[str, str] = {}

    def add(path, placeholder):
        if not path:
            return
        for p in {str(path), os.path.realpath(path)}:
            p = p.rstrip("/")
            if len(p) > 1 and p not in named:
                named[p] = placeholder

    for sp in [*site.getsitepackages(), site.getusersitepackages()]:
        add(sp, "<site-packages>")
    add(sys.prefix, "<python>")
    add(sys.base_prefix, "<python>")
    add(repo_root, "<grpo-lab>")
    add(tempfile.gettempdir(), "<tmp>")
    add("/tmp", "<tmp>")
    add(os.path.expanduser("~"), "~")
    for path, placeholder in (extra or {}).items():
        add(path, placeholder)
    return sorted(named.items(), key=lambda kv: -len(kv[0]))


def scrub(text: str, paths: list[tuple[str, str]]) -> str:
    """``text`` with each machine path replaced by its placeholder (a path only where it starts a path:
    ``/tmp`` is replaced in ``/tmp/x`` but not in ``/tmpfile`` or ``/data/tmp``)."""
    for path, placeholder in paths:
        text = re.sub(rf"(?<![\w.~-]){re.escape(path)}(?![\w.-])", placeholder.replace("\\", r"\\"), text)
    return text


def scrub_outputs(outputs: list[dict], paths: list[tuple[str, str]]) -> list[dict]:
    """Every text of ``outputs`` (streams, text data, error messages and tracebacks) passed through ``scrub``."""
    out = []
    for o in outputs:
        o = dict(o)
        kind = o.get("output_type")
        if kind == "stream":
            o["text"] = scrub(o["text"] if isinstance(o["text"], str) else "".join(o["text"]), paths)
        elif kind in ("display_data", "execute_result"):
            o["data"] = {
                k: (
                    scrub(v if isinstance(v, str) else "".join(v), paths)
                    if k in TEXT_MIMES and not isinstance(v, dict)
                    else v
                )
                for k, v in o["data"].items()
            }
        elif kind == "error":
            o["evalue"] = scrub(o["evalue"], paths)
            o["traceback"] = [scrub(line, paths) for line in o["traceback"]]
        out.append(o)
    return out
