"""Static snapshots of ipywidgets: what a widget showed when the notebook was rendered, without its state.

A widget's output in a notebook file is only a pointer (``application/vnd.jupyter.widget-view+json`` with a
``model_id``) into ``metadata.widgets``, which stores every model's full state. That state is large (each
figure drawn into an ``Output`` is kept once per redraw in some viewers) and neither GitHub nor a fresh Colab
session shows it. So each pointer is replaced by ordinary outputs built from the state: the images and texts
inside ``Output`` widgets, the HTML and Label widgets, and the controls' starting values; a tqdm bar becomes one
text line. After that the notebook needs no widget state at all.
"""

from __future__ import annotations

import html
import re

VIEW_MIME = "application/vnd.jupyter.widget-view+json"
STATE_MIME = "application/vnd.jupyter.widget-state+json"
NOTE_CONTROLS = "Static snapshot of an interactive widget: run the notebook to move its controls."
NOTE_LIVE = "Static snapshot of a widget that updates while the notebook runs: run the notebook to watch it."
BOXES = {"VBoxModel", "HBoxModel", "BoxModel", "GridBoxModel", "AccordionModel", "TabModel", "StackModel"}
TEXTS = {"HTMLModel", "HTMLMathModel", "LabelModel"}
PROGRESS = {"FloatProgressModel", "IntProgressModel"}
# Widgets that show nothing a reader needs once the kernel is gone.
SILENT = {
    "ButtonModel",
    "LayoutModel",
    "ButtonStyleModel",
    "DescriptionStyleModel",
    "SliderStyleModel",
    "ProgressStyleModel",
    "HTMLStyleModel",
    "LabelStyleModel",
}


def _tag(html_text: str) -> str:
    """The plain text of an HTML fragment; line breaks and block ends become newlines."""
    text = re.sub(r"<br\s*/?>|</(p|div|li|tr|h\d)>", "\n", html_text, flags=re.IGNORECASE)
    return html.unescape(re.sub(r"<[^>]+>", "", text))


class _Walk:
    """Collects, in display order, ``("html", text)``, ``("png", base64)``, ``("text", line)``,
    ``("tqdm", line)`` and ``("control", "description = value")`` items from a widget tree."""

    def __init__(self, states: dict):
        self.states = states
        self.items: list[tuple[str, str]] = []
        self.seen: set[str] = set()

    def widget(self, model_id: str) -> None:
        if model_id in self.seen or model_id not in self.states:
            return
        self.seen.add(model_id)
        entry = self.states[model_id]
        name, state = entry.get("model_name") or entry["state"].get("_model_name"), entry["state"]
        children = [c.removeprefix("IPY_MODEL_") for c in state.get("children", []) if isinstance(c, str)]
        if name in BOXES and self._is_tqdm(children):
            self.items.append(("tqdm", self._tqdm_line(children)))
        elif name in BOXES:
            for child in children:
                self.widget(child)
        elif name == "OutputModel":
            self.outputs(state.get("outputs", []))
        elif name in TEXTS:
            value = state.get("value", "")
            if value:
                self.items.append(("html", value if name != "LabelModel" else html.escape(value)))
        elif name == "ImageModel":
            self._image(entry)
        elif name not in SILENT and name not in PROGRESS and ("value" in state or "index" in state):
            self._control(state)

    def outputs(self, outputs: list[dict]) -> None:
        for o in outputs:
            data = o.get("data", {})
            if o.get("output_type") == "stream":
                self.items.append(("text", o.get("text", "")))
            elif VIEW_MIME in data:
                self.widget(data[VIEW_MIME]["model_id"])
            elif "image/png" in data:
                self.items.append(("png", data["image/png"]))
            elif "text/html" in data:
                self.items.append(("html", data["text/html"]))
            elif "text/plain" in data:
                self.items.append(("text", data["text/plain"]))

    def _is_tqdm(self, children: list[str]) -> bool:
        names = [self.states.get(c, {}).get("model_name") for c in children]
        return len(names) == 3 and names[0] == names[2] == "HTMLModel" and names[1] in PROGRESS

    def _tqdm_line(self, children: list[str]) -> str:
        left, _, right = (self.states[c]["state"] for c in children)
        for c in children:
            self.seen.add(c)
        # tqdm pads its numbers with figure spaces (U+2007) to keep them aligned; a text line wants plain ones.
        parts = (_tag(left.get("value", "")).strip(), _tag(right.get("value", "")).strip())
        return " ".join(p for p in parts if p).replace("\u2007", " ")

    def _image(self, entry: dict) -> None:
        if entry["state"].get("format", "png") != "png":
            return
        for buf in entry.get("buffers", []):
            if buf.get("path") == ["value"] and buf.get("encoding") == "base64":
                self.items.append(("png", buf["data"]))

    def _control(self, state: dict) -> None:
        value = state.get("value")
        labels = state.get("_options_labels")
        if labels and isinstance(state.get("index"), int) and 0 <= state["index"] < len(labels):
            value = labels[state["index"]]
        if isinstance(value, (list, tuple)):
            value = " to ".join(str(v) for v in value)
        desc = _tag(state.get("description", "")).strip().rstrip(":")
        self.items.append(("control", f"{desc} = {value}" if desc else str(value)))


def _display(data: dict) -> dict:
    return {"output_type": "display_data", "data": data, "metadata": {}}


def snapshot_outputs(view: dict, states: dict) -> list[dict]:
    """The outputs that stand for one widget view: a short italic note, then the widget's content in order.

    ``view`` is the ``application/vnd.jupyter.widget-view+json`` payload (it holds ``model_id``); ``states`` maps
    model ids to ``{"model_name", "state", "buffers"?}`` (nbclient's ``metadata.widgets`` state). Images become
    ``image/png`` outputs, HTML and text become ``text/html`` (with a plain-text fallback), the controls' values
    one line. A lone tqdm bar becomes a single ``stdout`` line with no note. A model missing from ``states``
    yields only the note.
    """
    walk = _Walk(states)
    walk.widget(view.get("model_id", ""))
    items = walk.items
    if items and all(kind == "tqdm" for kind, _ in items):  # a progress bar says all it has to say in text
        return [{"output_type": "stream", "name": "stdout", "text": "".join(v + "\n" for _, v in items)}]
    controls = [v for kind, v in items if kind == "control"]
    note = NOTE_CONTROLS if controls else NOTE_LIVE
    out = [_display({"text/html": f"<p><em>{html.escape(note)}</em></p>", "text/plain": note})]
    if controls:  # the settings the snapshot was drawn with, so its figure can be read against them
        said = "Controls: " + ", ".join(controls)
        out.append(_display({"text/html": f"<p>{html.escape(said)}</p>", "text/plain": said}))
    for kind, value in items:
        if kind == "png":
            out.append(_display({"image/png": value, "text/plain": "<figure>"}))
        elif kind == "html":
            out.append(_display({"text/html": value, "text/plain": _tag(value)}))
        elif kind in ("text", "tqdm") and value.strip():
            out.append(_display({"text/html": f"<pre>{html.escape(value)}</pre>", "text/plain": value}))
    return out


def replace_widget_views(cells: list[dict], widgets_metadata: dict | None) -> int:
    """Replace, in place, every widget-view output of ``cells`` by ``snapshot_outputs``; return how many.

    ``widgets_metadata`` is the notebook's ``metadata.widgets`` (``None`` when no widget was stored). The caller
    deletes that metadata afterwards: once every view is a snapshot, nothing refers to it.
    """
    states = ((widgets_metadata or {}).get(STATE_MIME) or {}).get("state", {})
    count = 0
    for cell in cells:
        if cell.get("cell_type") != "code":
            continue
        new = []
        for o in cell.get("outputs", []):
            view = (o.get("data") or {}).get(VIEW_MIME)
            if view is None:
                new.append(o)
                continue
            new.extend(snapshot_outputs(view, states))
            count += 1
        cell["outputs"] = new
    return count
