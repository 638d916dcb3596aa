"""``grpo-lab demo``, the main job: build a tiny model, SFT it to a partial accuracy, GRPO it, on a CPU."""

from __future__ import annotations

import time
from pathlib import Path

from grpo_lab.evaluation import evaluate, paired_difference
from grpo_lab.jobs.backends import run_grpo
from grpo_lab.jobs.report import Report, machine_info, plot_history
from grpo_lab.models import build_tiny_model, save_model
from grpo_lab.presets import Preset, resolve
from grpo_lab.sft import sft_train
from grpo_lab.tasks import get_task

HELDOUT_SEED = 12345  # the held-out problems of every report: the same for every training seed


def run_demo(
    out: str | Path = "runs/demo",
    preset: str | Preset = "cpu-addition",
    progress: bool = True,
    grpo_steps: int | None = None,
    seed: int | None = None,
) -> Report:
    """The main job: build a tiny model, SFT it to a partial accuracy, then GRPO it; write everything under ``out``.

    ``preset``: a name or a ``Preset`` (copied, never changed). ``seed`` is the training seed of the whole
    recipe: it sets the model's initialisation, the SFT data order and teacher noise, and GRPO's prompt order
    and sampling (``None``: the preset's ``grpo["seed"]``). The held-out problems never depend on it, so runs
    with different seeds are scored on the same problems. Writes ``out/sft/`` and ``out/final/``
    (``save_pretrained`` model + tokenizer), ``out/grpo.png`` and ``out/report.json`` (a ``Report``:
    ``accuracy_before``/``accuracy_after`` on problems never trained on, ``paired_gain``: the difference on those
    same problems with its paired standard error (``evaluation.paired_difference``), ``seconds_sft``,
    ``seconds_train``, the per-step history).
    """
    from grpo_lab.env import set_threads

    set_threads()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    preset = resolve(preset)
    seed = preset.grpo.get("seed", 0) if seed is None else int(seed)
    steps = {"max_steps": grpo_steps} if grpo_steps is not None else {}
    preset = preset.replace(grpo={**steps, "seed": seed}, sft={"seed": seed})
    t_start = time.perf_counter()
    task = get_task(preset.task)
    heldout = task.heldout_distinct(preset.eval_size, seed=HELDOUT_SEED)
    model, tok = build_tiny_model(preset.model.split(":", 1)[1], seed=seed)

    sk = preset.sft
    print(
        f"[1/2] SFT warm start: {preset.model} on {preset.task}, {sk['max_steps']} steps of {sk['batch_size']} from a "
        f"sloppy teacher (forgets the final carry {sk.get('teacher_drop', 0):.0%} of the time), seed {seed}"
    )
    sft = sft_train(model, tok, task, progress=progress, **preset.sft)
    save_model(model, tok, out / "sft")
    before = evaluate(model, tok, task, heldout)
    report = Report(
        preset=preset.name,
        seed=seed,
        task=preset.task,
        model=preset.model,
        n_heldout=len(heldout),
        heldout_seed=HELDOUT_SEED,
        machine=machine_info(),
        accuracy_before=before.accuracy,
        seconds_sft=round(sft.seconds, 2),
        sft_steps=sft.steps,
        status="sft-done",
    )
    report.write(out)
    print(f"      held-out greedy accuracy after SFT: {before.accuracy:.3f}  ({sft.seconds:.0f} s, {sft.steps} steps)")
    return _grpo_phase(model, tok, preset, task, heldout, out, report, progress, t_start, before)


def _grpo_phase(model, tok, preset, task, heldout, out: Path, report: Report, progress, t_start, before) -> Report:
    g = preset.grpo
    print(
        f"[2/2] GRPO: {g['max_steps']} steps, G={g['num_generations']}, lr={g['learning_rate']}, "
        f"loss_type={g['loss_type']}"
    )
    summary, history = run_grpo(model, tok, preset, out, progress=progress, task=task)
    after = evaluate(model, tok, task, heldout)
    # Every held-out problem too (1,694 for 2-digit addition): the sample of 500 has a standard error of ~1.3 points.
    every = evaluate(model, tok, task, task.all_problems("test")).accuracy if hasattr(task, "all_problems") else None
    gain = paired_difference(after.correct, before.correct)  # the same problems: pair them (McNemar's errors)
    report.update(
        accuracy_after=after.accuracy,
        paired_gain=gain,
        accuracy_after_all_heldout=every,
        seconds_train=round(summary["seconds"], 2),
        steps=summary["steps"],
        grpo_config=preset.grpo,
        history=history,
        status="done",
        seconds_total=round(time.perf_counter() - t_start, 2),
    )
    report.write(out)
    plot_history(
        history,
        out / "grpo.png",
        title=f"GRPO on {preset.task} ({preset.name})",
        start_accuracy=summary.get("eval_at_start"),
    )
    print(
        f"      held-out greedy accuracy after GRPO: {after.accuracy:.3f}  ({summary['seconds']:.0f} s)"
        + (f"; on all {len(task.all_problems('test'))} held-out problems: {every:.3f}" if every is not None else "")
    )
    print(
        f"      gain on the same {gain['n']} problems: {gain['diff']:+.3f} +- {gain['se']:.3f} (paired standard "
        f"error; {gain['b']} fixed, {gain['c']} broken)"
    )
    print(f"Wrote {out}/sft, {out}/final, {out}/grpo.png, {out}/report.json")
    return report
