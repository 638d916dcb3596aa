"""The widgets as a student sees them: JupyterLab in a real headless Chromium, driven by Playwright.

tests/test_notebooks.py proves every notebook *executes* in a kernel; nothing there proves a widget *renders*,
that dragging a slider redraws a plot, or that no widget shows an error box. This module starts ``jupyter lab``
on a copy of notebooks/ (JupyterLab autosaves, so the repository's notebooks are never opened), opens
notebooks 02, 04 and 07 in Chromium, runs all their cells from the page, and checks what the page shows:

- no cell shows an error output and no widget shows "Error displaying widget" or "Loading widget...";
- 02: moving a reward slider of the advantage explorer replaces its figure, the advantages printed on the page
  equal ``grpo_lab.grpo.group_advantages`` of the rewards printed on the page, and moving a reward of group 2
  changes group 1's batch-scaled advantages but not its group-scaled ones;
- 04 (test mode): the live training dashboard appears and its image is replaced while training runs;
- 07: moving a cost-calculator slider replaces both its table and its figure.

It reads the page through the widgets' CSS classes (``grpo-lab-figure``, ``grpo-lab-values``, ...; see
grpo_lab/course/widgets/). Screenshots before and after each interaction go to ``$GRPO_LAB_SCREENSHOT_DIR`` or
runs/browser-test/ (printed, and named in every failure message).

Chromium comes from Debian (``/usr/bin/chromium``; Playwright never downloads a browser here). Without it the
test skips, unless ``GRPO_LAB_REQUIRE_BROWSER=1`` (set by .ci/run, which installs Chromium): then it fails.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("GRPO_LAB_CHROMIUM", "/usr/bin/chromium")
INSTALL_HINT = "sudo apt-get install -y chromium"
# Guards against a hang, not speed targets: notebook 07 in test mode takes a few minutes on one busy thread.
RUN_LIMIT_S = int(os.environ.get("GRPO_LAB_BROWSER_LIMIT_S", "900"))
SERVER_LIMIT_S = 180
REDRAW_LIMIT_S = 60
# Flags that work on a machine without network access: no sandbox (root in a container), no GPU, and no
# background traffic (without these, Chromium's refused outgoing connections pile up and slow the page).
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
NB_02 = "02_group_relative_advantages.ipynb"
NB_04 = "04_grpo_from_scratch.ipynb"
NB_07 = "07_ensembles_and_consensus.ipynb"

# xdist_group asks `--dist loadgroup` to keep the three tests on one worker (one server, one browser). Nothing
# depends on it: pytest 9.2 ignores the node-id suffix pytest-xdist 3.8 uses for groups, so they may be split,
# and then each worker starts its own server (a free port, its own temporary folders) and browser.
pytestmark = [pytest.mark.full, pytest.mark.slow, pytest.mark.xdist_group("browser"), pytest.mark.timeout(1800)]


def _screenshot_dir() -> Path:
    d = Path(os.environ.get("GRPO_LAB_SCREENSHOT_DIR") or ROOT / "runs" / "browser-test")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_browser():
    """Skip (or fail where the browser is mandatory) when Chromium or Playwright is missing."""
    required = os.environ.get("GRPO_LAB_REQUIRE_BROWSER") == "1"
    problems = []
    if not Path(CHROMIUM).exists():
        problems.append(f"no Chromium at {CHROMIUM}; install it with: {INSTALL_HINT}")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        problems.append("Python package playwright missing; install the [dev] extra: pip install -e '.[dev]'")
    if problems:
        msg = "browser test: " + "; ".join(problems)
        if required:
            pytest.fail(msg + " (GRPO_LAB_REQUIRE_BROWSER=1 makes this test mandatory)")
        pytest.skip(msg)


class Lab:
    """A ``jupyter lab`` server on a free local port, serving a temporary copy of notebooks/."""

    def __init__(self, tmp: Path):
        self.root = tmp / "notebooks"
        shutil.copytree(ROOT / "notebooks", self.root)
        self.port, self.token = _free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        settings = tmp / "lab-settings" / "@jupyterlab"
        for plugin, values in [
            # Render every cell (no virtual scrolling), so an error output far below the viewport is in the page.
            ("notebook-extension/tracker", {"windowingMode": "none"}),
            # No news or update check: no network here, and no toast over the screenshots.
            ("apputils-extension/notification", {"fetchNews": "false", "checkForUpdates": False}),
        ]:
            (settings / plugin).parent.mkdir(parents=True, exist_ok=True)
            (settings / f"{plugin}.jupyterlab-settings").write_text(json.dumps(values))
        env = dict(
            os.environ,
            GRPO_LAB_TEST_MODE="1",
            OMP_NUM_THREADS="1",
            GRPO_LAB_THREADS="1",
            HF_HUB_OFFLINE="1",
            GRPO_LAB_STRICT_CHECKS="1",
            TOKENIZERS_PARALLELISM="false",
            PYDEVD_DISABLE_FILE_VALIDATION="1",
            PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
            GRPO_LAB_EVAL_CACHE=str(tmp / "eval-cache"),
            JUPYTERLAB_SETTINGS_DIR=str(tmp / "lab-settings"),
            JUPYTERLAB_WORKSPACES_DIR=str(tmp / "lab-workspaces"),
            JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        )
        env.pop("MPLBACKEND", None)  # the notebooks choose inline plots themselves
        self.log_path = tmp / "jupyter-lab.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "jupyter",
                "lab",
                "--no-browser",
                "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}",
                "--ServerApp.port_retries=0",
                f"--IdentityProvider.token={self.token}",
                f"--ServerApp.root_dir={self.root}",
                "--LabApp.expose_app_in_browser=True",
                *(["--allow-root"] if os.geteuid() == 0 else []),
            ],  # test machines and containers often run as root
            cwd=self.root,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def log_tail(self, n: int = 3000) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")[-n:]

    def api(self, path: str, method: str = "GET"):
        req = urllib.request.Request(self.url + path, method=method, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(req, timeout=10) as r:
            body = r.read()
        return json.loads(body) if body else None

    def wait_ready(self):
        deadline = time.monotonic() + SERVER_LIMIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(f"jupyter lab exited with code {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.api("/api/status")
                return
            except OSError:
                time.sleep(0.5)
        pytest.fail(f"jupyter lab did not answer on {self.url} within {SERVER_LIMIT_S} s:\n{self.log_tail()}")

    def shutdown_kernels(self):
        try:
            for s in self.api("/api/sessions"):
                self.api(f"/api/sessions/{s['id']}", method="DELETE")
        except OSError:
            pass

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()  # Jupyter's clean stop on SIGTERM: it shuts its kernels down first
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        try:  # whatever it left behind in its own process group (start_new_session above)
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    _require_browser()
    server = Lab(tmp_path_factory.mktemp("browser-lab"))
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser_context(lab, tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        ctx = pw.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")),
            executable_path=CHROMIUM,
            headless=True,
            args=CHROMIUM_ARGS,
            viewport={"width": 1400, "height": 1000},
        )
        try:
            yield ctx
        finally:
            ctx.close()


class Notebook:
    """One notebook open in its own page: run it from the page, then inspect and screenshot it."""

    def __init__(self, lab: Lab, ctx, name: str):
        self.lab, self.name, self.stem = lab, name, name.split("_")[0]
        self.page = ctx.new_page()
        self.console: list[str] = []
        self.run: dict | None = None
        self.page.on("console", lambda m: self.console.append(f"{m.type}: {m.text}") if m.type == "error" else None)
        # A workspace of its own, reset: the page opens this notebook and nothing restored from an earlier page.
        self.page.goto(
            f"{lab.url}/lab/workspaces/t{self.stem}/tree/{name}?reset&token={lab.token}",
            wait_until="domcontentloaded",
            timeout=SERVER_LIMIT_S * 1000,
        )
        self.page.wait_for_function(
            """(name) => { const app = window.jupyterapp; const w = app && app.shell.currentWidget;
                 const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
                 return !!(w && w.context && w.context.path.endsWith(name) && w.content && w.content.widgets.length
                           && k && k.status === 'idle'); }""",
            arg=name,
            timeout=SERVER_LIMIT_S * 1000,
        )
        self.panel = self.page.locator(".jp-NotebookPanel:visible").first

    def fail(self, msg: str):
        path = self.screenshot("failure")
        pytest.fail(f"{self.name}: {msg}\n(screenshot: {path}; browser console errors: {self.console[-5:]})")

    def screenshot(self, tag: str, near=None) -> Path:
        if near is not None:
            near.scroll_into_view_if_needed()
        path = _screenshot_dir() / f"{self.stem}-{tag}.png"
        self.page.screenshot(path=str(path))
        print(f"screenshot: {path}")
        return path

    def run_all(self, before_run_js: str | None = None):
        """``notebook:run-all-cells`` from the page; returns when its promise settles (or fails at the limit)."""
        if before_run_js:
            self.page.evaluate(before_run_js)
        self.page.evaluate(
            """() => { const app = window.jupyterapp; app.shell.activateById(app.shell.currentWidget.id);
                 window.__grpoRun = {done: false, ok: null, t0: Date.now(), t1: null};
                 app.commands.execute('notebook:run-all-cells').then(
                   ok => Object.assign(window.__grpoRun, {done: true, ok: ok, t1: Date.now()}),
                   err => Object.assign(window.__grpoRun, {done: true, ok: String(err), t1: Date.now()})); }"""
        )
        try:
            self.page.wait_for_function("() => window.__grpoRun.done", timeout=RUN_LIMIT_S * 1000, polling=500)
        except Exception:
            self.fail(f"cells still running after {RUN_LIMIT_S} s (GRPO_LAB_BROWSER_LIMIT_S)")
        self.page.wait_for_function(  # no cell left queued or running ("[*]")
            """() => !Array.from(document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-InputPrompt'))
                   .some(p => p.textContent.includes('*'))""",
            timeout=60_000,
        )
        try:  # widget views render after their cell's reply; give them a moment, then judge
            self.page.wait_for_function(
                "() => !document.body.innerText.includes('Loading widget...')", timeout=30_000, polling=500
            )
        except Exception:
            pass
        self.run = self.page.evaluate("() => window.__grpoRun")
        return self.run

    def assert_clean(self):
        """No error output in any cell, no widget error box or placeholder, one image per figure output."""
        errors = self.page.evaluate(
            """() => Array.from(document.querySelectorAll('[data-mime-type="application/vnd.jupyter.error"]'))
                   .map(e => e.innerText.slice(-1500))"""
        )
        if errors:
            self.fail(f"{len(errors)} cell(s) show an error; the first:\n{errors[0]}")
        text = self.panel.inner_text()
        for bad in ("Error displaying widget", "Loading widget..."):
            if bad in text:
                self.fail(f"a widget shows {bad!r} after execution finished")
        counts = self.page.evaluate(
            """() => Array.from(document.querySelectorAll('.grpo-lab-figure'))
                   .map(f => Array.from(f.querySelectorAll('img')).filter(i => i.naturalWidth > 0).length)"""
        )
        if any(c != 1 for c in counts):
            self.fail(f"figure outputs should each show one loaded image; images per figure: {counts}")
        if self.run and self.run["ok"] is not True:
            self.fail(f"running all cells did not succeed (JupyterLab answered {self.run['ok']!r})")

    def wait_until(self, probe, what: str, limit_s: float = REDRAW_LIMIT_S):
        deadline = time.monotonic() + limit_s
        while True:
            value = probe()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail(f"{what} (waited {limit_s:.0f} s)")
            self.page.wait_for_timeout(250)

    def settle(self, scope, quiet_s: float = 1.5):
        """Wait until the kernel is idle and ``scope`` has not changed for ``quiet_s``: a widget may redraw once
        more after its cell finished (a slider snapping its value to its step sends that value back)."""
        deadline, last, since = time.monotonic() + REDRAW_LIMIT_S, None, time.monotonic()
        while time.monotonic() < deadline:
            state = (
                self.page.evaluate("() => window.jupyterapp.shell.currentWidget.sessionContext.session.kernel.status"),
                scope.inner_html(),
            )
            if state != last or state[0] != "idle":
                last, since = state, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            self.page.wait_for_timeout(250)
        self.fail(f"the page kept changing (or the kernel stayed busy) for {REDRAW_LIMIT_S} s")

    def only(self, selector: str, what: str):
        """Run every cell, check the page is clean, and return the one element ``selector`` names."""
        self.run_all()
        self.assert_clean()
        found = self.page.locator(selector)
        if found.count() != 1:
            self.fail(f"expected one {what} ({selector}), found {found.count()}")
        return found

    def close(self):
        self.page.close()
        self.lab.shutdown_kernels()


@pytest.fixture
def open_notebook(lab, browser_context):
    opened = []

    def _open(name: str) -> Notebook:
        nb = Notebook(lab, browser_context, name)
        opened.append(nb)
        return nb

    yield _open
    for nb in opened:
        nb.close()


def set_slider(nb: Notebook, scope, description: str, value) -> None:
    """Type ``value`` into the editable readout of the slider labelled ``description`` and press Enter
    (ipywidgets 8 reads a typed readout on Enter; with continuous_update=False this is one value change)."""
    label = nb.page.locator(".widget-label", has_text=re.compile(rf"^\s*{re.escape(description)}\s*$"))
    slider = scope.locator(".widget-slider", has=label)
    if slider.count() != 1:
        nb.fail(f"expected one slider labelled {description!r}, found {slider.count()}")
    readout = slider.locator(".widget-readout")
    readout.scroll_into_view_if_needed()
    readout.click()
    nb.page.keyboard.press("ControlOrMeta+A")
    nb.page.keyboard.type(str(value))
    nb.page.keyboard.press("Enter")
    got = readout.inner_text().strip()
    if float(got) != pytest.approx(float(value)):
        nb.fail(f"slider {description!r}: typed {value} into its readout, it shows {got}")


def img_src(scope) -> str | None:
    img = scope.locator(".grpo-lab-figure img")
    return img.first.get_attribute("src") if img.count() else None


# ------------------------------------------------------------------------------------------------------------
# 02: advantage explorer
# ------------------------------------------------------------------------------------------------------------

READ_ADV_TABLE = """(root) => Array.from(root.querySelectorAll('.grpo-lab-values table.grpo-lab-adv-table td[data-kind]'))
    .map(td => ({kind: td.dataset.kind, scale: td.dataset.scale || null, i: Number(td.dataset.i),
                 text: td.textContent.trim(), changed: td.classList.contains('changed')}))"""


def _adv_table(nb: Notebook, explorer) -> tuple[list[float], dict[str, dict[int, str]], dict[str, dict[int, bool]]]:
    cells = explorer.evaluate(READ_ADV_TABLE)
    rewards = {c["i"]: float(c["text"]) for c in cells if c["kind"] == "reward"}
    if not rewards:
        nb.fail("the advantage explorer shows no reward cells (td[data-kind=reward] in table.grpo-lab-adv-table)")
    adv: dict[str, dict[int, str]] = {}
    changed: dict[str, dict[int, bool]] = {}
    for c in cells:
        if c["kind"] == "adv":
            adv.setdefault(c["scale"], {})[c["i"]] = c["text"]
            changed.setdefault(c["scale"], {})[c["i"]] = c["changed"]
    return [rewards[i] for i in sorted(rewards)], adv, changed


def _check_against_library(nb: Notebook, rewards: list[float], adv: dict[str, dict[int, str]], G: int):
    import torch

    from grpo_lab.grpo import group_advantages

    if not {"group", "batch"} <= set(adv):
        nb.fail(f"advantage cells for scales group and batch expected, the page has {sorted(adv)}")
    for scale, shown in adv.items():
        want = group_advantages(torch.tensor(rewards, dtype=torch.float64), G, scale).tolist()
        expected = {i: f"{a:+.4f}" for i, a in enumerate(want)}
        if shown != expected:
            nb.fail(
                f"scale {scale!r}: the page shows advantages {shown} for rewards {rewards}, "
                f"group_advantages gives {expected}"
            )


def test_advantage_explorer_in_the_browser(open_notebook):
    nb = open_notebook(NB_02)
    explorer = nb.only(".grpo-lab-advantage-explorer", "advantage explorer")
    labels = [t.strip() for t in explorer.locator(".widget-slider .widget-label").all_inner_texts()]
    slots = [tuple(map(int, m.groups())) for t in labels if (m := re.fullmatch(r"g(\d+)\.(\d+)", t))]
    G, n_groups = max(j for _, j in slots), max(g for g, _ in slots)
    if n_groups < 2 or len(slots) != G * n_groups:
        nb.fail(f"expected sliders g1.1 .. gN.G for at least two groups, found {labels}")

    nb.settle(explorer)
    rewards0, adv0, _ = _adv_table(nb, explorer)
    _check_against_library(nb, rewards0, adv0, G)
    src0 = img_src(explorer)
    if not src0:
        nb.fail("the advantage explorer shows no figure image")
    nb.screenshot("before", near=explorer)

    # Move a reward of group 1: the figure is replaced and the printed advantages follow the library.
    new_r = 0.7 if abs(rewards0[0] - 0.7) > 1e-9 else 0.3
    set_slider(nb, explorer, "g1.1", new_r)
    nb.wait_until(lambda: img_src(explorer) not in (None, src0), "moving slider g1.1 did not change the figure")
    nb.wait_until(
        lambda: _adv_table(nb, explorer)[0][0] == pytest.approx(new_r),
        f"moving slider g1.1 to {new_r} did not change the reward shown in the table",
    )
    nb.settle(explorer)
    rewards1, adv1, _ = _adv_table(nb, explorer)
    _check_against_library(nb, rewards1, adv1, G)
    nb.screenshot("after-g1", near=explorer)

    # Move a reward of group 2: group 1's batch-scaled advantages move (the batch std changed), its
    # group-scaled ones cannot (they depend on group 1's rewards only).
    src1 = img_src(explorer)
    target = 0.0 if abs(rewards1[G] - 0.0) > 1e-9 else 1.0
    set_slider(nb, explorer, "g2.1", target)
    nb.wait_until(
        lambda: _adv_table(nb, explorer)[0][G] == pytest.approx(target),
        f"moving slider g2.1 to {target} did not change the reward shown in the table",
    )
    nb.wait_until(lambda: img_src(explorer) not in (None, src1), "moving slider g2.1 did not change the figure")
    nb.settle(explorer)
    rewards2, adv2, changed2 = _adv_table(nb, explorer)
    _check_against_library(nb, rewards2, adv2, G)
    g1 = range(G)
    if [adv2["group"][i] for i in g1] != [adv1["group"][i] for i in g1]:
        nb.fail(
            f"group 1's group-scaled advantages changed when only group 2 moved: "
            f"{[adv1['group'][i] for i in g1]} -> {[adv2['group'][i] for i in g1]}"
        )
    if [adv2["batch"][i] for i in g1] == [adv1["batch"][i] for i in g1]:
        nb.fail(
            f"group 1's batch-scaled advantages did not change when group 2 moved: {[adv2['batch'][i] for i in g1]}"
        )
    moved = [i for i in g1 if adv2["batch"][i] != adv1["batch"][i]]
    if not all(changed2["batch"][i] for i in moved):
        nb.fail(f"group 1's batch cells {moved} changed but are not marked with the CSS class 'changed'")
    nb.screenshot("after-g2", near=explorer)


# ------------------------------------------------------------------------------------------------------------
# 04: live training dashboard
# ------------------------------------------------------------------------------------------------------------

# Records, for every dashboard on the page, each distinct image it shows and when, so that a redraw during
# training is seen even when the run ends between two polls.
WATCH_DASHBOARDS = """() => {
  window.__grpoDash = [];
  const seen = new Map();
  const scan = () => document.querySelectorAll('.grpo-lab-dashboard').forEach(d => {
    if (!seen.has(d)) { seen.set(d, new Set()); window.__grpoDash.push({srcs: [], times: []}); d.__grpoIdx = seen.size - 1; }
    const rec = window.__grpoDash[d.__grpoIdx];
    d.querySelectorAll('img').forEach(img => { const s = img.getAttribute('src');
      if (s && !seen.get(d).has(s)) { seen.get(d).add(s); rec.srcs.push(s.length); rec.times.push(Date.now()); } });
  });
  new MutationObserver(scan).observe(document.body, {subtree: true, childList: true, attributes: true,
                                                    attributeFilter: ['src']});
}"""


def test_training_dashboard_updates_while_training(open_notebook):
    nb = open_notebook(NB_04)
    run = nb.run_all(before_run_js=WATCH_DASHBOARDS)
    nb.assert_clean()
    dashboards = nb.page.locator(".grpo-lab-dashboard")
    if dashboards.count() == 0:
        nb.fail("no training dashboard (.grpo-lab-dashboard) on the page after the training cells ran")
    nb.screenshot("after", near=dashboards.first)
    watched = nb.page.evaluate("() => window.__grpoDash")
    during = [sum(t < run["t1"] for t in d["times"]) for d in watched]
    if not any(n >= 2 for n in during):
        nb.fail(
            f"no dashboard showed two different images while the cells ran (distinct images per dashboard "
            f"seen before the run finished: {during})"
        )


# ------------------------------------------------------------------------------------------------------------
# 07: ensemble cost calculator
# ------------------------------------------------------------------------------------------------------------


def test_cost_calculator_in_the_browser(open_notebook):
    nb = open_notebook(NB_07)
    calc = nb.only(".grpo-lab-cost-calculator", "cost calculator")
    table = calc.locator(".grpo-lab-values table.grpo-lab-cost-table")
    if table.count() != 1:
        nb.fail("the cost calculator shows no table.grpo-lab-cost-table")
    nb.settle(calc)
    table0, src0 = table.inner_text(), img_src(calc)
    if not src0:
        nb.fail("the cost calculator shows no figure image")
    nb.screenshot("before", near=calc)
    size_slider = calc.locator(".widget-slider", has=nb.page.locator(".widget-label", has_text="ensemble size"))
    size = int(float(size_slider.locator(".widget-readout").inner_text()))
    new_size = 9 if size != 9 else 3
    set_slider(nb, calc, "ensemble size", new_size)
    # The ensemble's row names its size ("9 x 0.5B vote"): the table must show the new one, not just any change.
    nb.wait_until(
        lambda: table.inner_text() != table0 and f"{new_size} x " in table.inner_text(),
        f"ensemble size {size} -> {new_size}: the table does not show {new_size} members",
    )
    nb.wait_until(
        lambda: img_src(calc) not in (None, src0), f"ensemble size {size} -> {new_size} did not change the figure"
    )
    nb.settle(calc)
    nb.assert_clean()
    nb.screenshot("after", near=calc)
