"""``grpo-lab train``: one training job for every preset and either backend, with an honest baseline.

Load the preset's model, build its task with the tokenizer (chat prompts for chat models), evaluate the
untrained model (at the training budget and at a generous one), train, evaluate again, and write
``out/report.json`` (a ``Report``) as it goes and ``out/final``. A partial report is on disk before training
starts, so a crash or Ctrl-C loses at most the phase in progress; with checkpoints (``save_steps``),
``resume`` continues the training phase where it stopped.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from grpo_lab.evaluation import EvalResult, accuracy_by, paired_difference, sampled_pass_at_k
from grpo_lab.jobs.backends import KeepLatestCheckpoints, checkpoint_to_resume, train_preset
from grpo_lab.jobs.demo import HELDOUT_SEED
from grpo_lab.jobs.report import (
    ProgressBar,
    Report,
    evaluate_preset,
    evaluate_untrained,
    machine_info,
    untrained_pass_at_k,
    write_json,
)
from grpo_lab.models import load_for_preset
from grpo_lab.presets import Preset, resolve
from grpo_lab.tasks import Task, get_task

TASK_FILE = "grpo_lab_task.json"  # next to a trained model: its task and settings, so `grpo-lab eval` can rebuild it


def task_spec(name: str, model_dir: str | Path | None = None) -> tuple[str, dict, int | None]:
    """``(task name, task kwargs, evaluation budget or None)`` for ``grpo-lab eval``.

    ``name``: a task (``arithmetic``: its defaults) or a preset (``cpu-smollm2``: that preset's task with its
    settings and system prompt, and its evaluation budget). ``name`` None with ``model_dir`` holding the
    ``TASK_FILE`` a training run wrote: the task that model was trained on. Else ``addition``.
    """
    from grpo_lab.presets import PRESETS

    if name is None and model_dir is not None and (Path(model_dir) / TASK_FILE).exists():
        spec = json.loads((Path(model_dir) / TASK_FILE).read_text())
        return spec["task"], dict(spec.get("task_args") or {}), spec.get("eval_max_new_tokens")
    if name in PRESETS:
        p = PRESETS[name]
        return p.task, dict(p.task_args), p.runtime.get("eval_max_new_tokens")
    return name or "addition", {}, None


def _before_after(before: EvalResult, after: EvalResult, n: int, baseline: EvalResult | None = None) -> list[dict]:
    rows = [
        {
            "question": b["question"],
            "gold": b["gold"],
            "before": b["completion"],
            "after": a["completion"],
            "before_correct": b["correct"],
            "after_correct": a["correct"],
        }
        for b, a in zip(before.rows[:n], after.rows[:n])
    ]
    if baseline is not None and baseline is not before:
        for r, g in zip(rows, baseline.rows):
            r.update(before_generous=g["completion"], before_generous_correct=g["correct"])
    return rows


def _check_compute_dtype(model, preset: Preset) -> None:
    """Refuse a ``compute_dtype`` the model's device cannot train in, before any evaluation: the trainer's own
    ``ConfigError`` with its one-line fix (``models.compute_dtype_problem``)."""
    from grpo_lab.errors import ConfigError
    from grpo_lab.models import compute_dtype_problem

    problem = compute_dtype_problem(next(model.parameters()).device, preset.runtime.get("compute_dtype") or "fp32")
    if problem:
        raise ConfigError(problem)


def prepare(preset, steps=None, seed=None, compute_dtype=None, save_steps=None) -> Preset:
    """A private copy of ``preset`` (a name, a ``Preset`` or None: ``choose_preset()``) with the caller's
    overrides: GRPO steps, training seed, checkpoint interval, compute dtype."""
    preset = resolve(preset)
    grpo = {k: v for k, v in dict(max_steps=steps, seed=seed, save_steps=save_steps).items() if v is not None}
    return preset.replace(grpo=grpo, runtime={} if compute_dtype is None else {"compute_dtype": compute_dtype})


def _folder_of(resume: str | Path) -> Path:
    """The run folder a ``resume`` path belongs to: a previous ``--out`` itself, or the folder above
    ``checkpoints/checkpoint-N``."""
    path = Path(resume)
    path = path.parent if path.name.startswith("checkpoint-") else path
    return path.parent if path.name == "checkpoints" else path


def run_folder(resume, out, default: str) -> Path:
    """The run's folder (created): ``out``; else the one a ``resume`` path belongs to; else ``default``."""
    resumed = resume not in (None, True, False)
    path = Path(out) if out is not None else _folder_of(resume) if resumed else Path(default)
    path.mkdir(parents=True, exist_ok=True)
    return path


def previous_run(resume) -> dict:
    """What resuming the run at ``resume`` (a path) must repeat, from its ``report.json``: ``preset`` (the
    registered preset with the run's GRPO knobs and machine settings), ``backend``, ``init`` (when the run
    started from another model) and ``eval_size``; ``{}`` without a path or a report."""
    from grpo_lab.errors import UsageError
    from grpo_lab.presets import PRESETS, get_preset

    f = _folder_of(resume) / "report.json" if resume not in (None, True, False) else None
    if f is None or not f.is_file():
        return {}
    rep = json.loads(f.read_text())
    if rep.get("preset") not in PRESETS:
        raise UsageError(f"{f} was written by preset {rep.get('preset')!r}, which is not registered: pass --preset")
    preset = get_preset(rep["preset"]).replace(grpo=rep.get("grpo_config") or {}, runtime=rep.get("runtime") or {})
    init = rep.get("model") if rep.get("model") != preset.model else None
    return {"preset": preset, "backend": rep.get("backend"), "init": init, "eval_size": rep.get("n_heldout")}


def _evaluate_before(model, tok, preset: Preset, task: Task, heldout, k, report: Report, say, cache: bool):
    """The untrained model at the training budget and, when the preset names one, at a generous budget
    (``runtime.baseline_max_new_tokens``, the honest baseline: ``accuracy_before``); fills ``report``.
    ``cache``: reuse an earlier run's identical evaluation of the preset's own model (``evaluate_untrained``)."""
    generous = preset.runtime.get("baseline_max_new_tokens")
    at_cap, hit = evaluate_untrained(model, tok, preset, task, heldout, k, cache=cache)
    said = " (remembered from an earlier run: same model, problems and budget)" if hit else ""
    say(
        f"      at the training budget ({at_cap.max_new_tokens} new tokens): {at_cap.accuracy:.3f} "
        f"+- {at_cap.stderr:.3f}, mean length {at_cap.mean_length:.1f} tokens{said}"
    )
    baseline = at_cap
    if generous and generous > at_cap.max_new_tokens:
        baseline, hit = evaluate_untrained(model, tok, preset, task, heldout, 0, max_new_tokens=generous, cache=cache)
        said = " (remembered)" if hit else ""
        say(
            f"      with a generous budget ({generous} new tokens): {baseline.accuracy:.3f} +- {baseline.stderr:.3f}, "
            f"mean length {baseline.mean_length:.1f} tokens  <- the honest baseline{said}"
        )
    report.update(
        k=at_cap.k,
        before=baseline.summary(),
        before_at_cap=at_cap.summary(),
        accuracy_before=baseline.accuracy,
        accuracy_before_at_cap=at_cap.accuracy,
        mean_length_before=round(at_cap.mean_length, 2),
        status="evaluated-before",
    )
    _extras(model, tok, preset, task, heldout, baseline, report, "before", say, cache)
    return baseline, at_cap


def _evaluate_after(model, tok, preset: Preset, task: Task, heldout, k, report: Report, befores, n_samples, say):
    """The trained model at the evaluation budget and, when there was a generous baseline, at that budget too
    (same problems, same decoding); fills ``report`` with the numbers and the before/after samples."""
    baseline, before = befores
    after = evaluate_preset(model, tok, preset, task, heldout, k)
    report.update(
        after=after.summary(),
        accuracy_after=after.accuracy,
        mean_length_after=round(after.mean_length, 2),
        samples=_before_after(before, after, n_samples, baseline),
    )
    if baseline is not before:
        generous = evaluate_preset(model, tok, preset, task, heldout, 0, max_new_tokens=baseline.max_new_tokens)
        report.update(after_generous=generous.summary(), accuracy_after_generous=generous.accuracy)
    report.update(paired_gain=paired_difference(after.correct, baseline.correct))
    _extras(model, tok, preset, task, heldout, after, report, "after", say)
    if preset.runtime.get("eval_pass_n"):
        report.update(
            flips=_flips(heldout, baseline, after, 5),
            heldout_completions={"before": list(baseline.completions), "after": list(after.completions)},
        )
    return after


def _extras(
    model, tok, preset: Preset, task: Task, heldout, result: EvalResult, report: Report, when: str, say, cache=False
):
    """What the preset asks for beyond accuracy (``Runtime.eval_pass_n``, ``transfer_task_args``), for ``when``
    ("before" or "after"): accuracy by difficulty level, the unbiased pass@k on the first ``eval_pass_size``
    problems (sampled at the training temperature), and the accuracy on the transfer set; merged into ``report``'s ``by_level``/``pass_at_k``/``transfer``.
    ``cache`` (before training, the preset's own untrained model): both are remembered on disk as
    ``evaluate_untrained`` remembers the greedy baseline, so a second training seed does not pay for them again."""
    rt, budget = preset.runtime, result.max_new_tokens
    if "level" in (heldout[0].meta if heldout else {}):
        report.update(by_level={**(report.by_level or {}), when: accuracy_by(heldout, result.correct, "level")})
    n = rt.get("eval_pass_n")
    if n:
        some = heldout[: rt.get("eval_pass_size") or len(heldout)]
        temp = preset.grpo.get("temperature", 1.0)  # the policy's own sampling distribution, as in training
        if cache:
            pk, _ = untrained_pass_at_k(model, tok, preset, task, some, n, budget, HELDOUT_SEED, temp)
        else:
            pk = sampled_pass_at_k(
                model, tok, task, some, n, max_new_tokens=budget, seed=HELDOUT_SEED, temperature=temp
            )
        report.update(pass_at_k={**(report.pass_at_k or {}), when: {**pk.summary(), "problems": len(some)}})
        say(
            f"      pass@k over {len(some)} problems, {n} samples each: "
            + ", ".join(f"pass@{k} {v:.3f}" for k, v in pk.pass_at.items())
        )
    extra = rt.get("transfer_task_args")
    if extra:
        other = get_task(preset.task, tokenizer=tok, **{**preset.task_args, **extra})
        probs = other.heldout_distinct(rt.get("transfer_size") or len(heldout), seed=HELDOUT_SEED)
        if cache:
            res, _ = evaluate_untrained(model, tok, preset, other, probs, 0, max_new_tokens=budget)
        else:
            res = evaluate_preset(model, tok, preset, other, probs, 0, max_new_tokens=budget)
        say(f"      {other.describe()}, never trained on: {res.accuracy:.3f} +- {res.stderr:.3f} ({res.n} problems)")
        report.update(transfer={**(report.transfer or {}), "task": other.describe(), when: res.summary()})


def _flips(heldout, before: EvalResult, after: EvalResult, n: int) -> list[dict]:
    """Up to ``n`` problems the model failed before and passes after, with both completions."""
    out = []
    for p, b, a in zip(heldout, before.rows, after.rows):
        if not b["correct"] and a["correct"]:
            out.append({"question": p.question, "before": b["completion"], "after": a["completion"]})
        if len(out) >= n:
            break
    return out


def _print_outcome(report: Report, baseline: EvalResult, before: EvalResult, after: EvalResult, out: Path, say):
    say(
        f"      at the training budget: {before.accuracy:.3f} -> {after.accuracy:.3f}; mean length "
        f"{before.mean_length:.1f} -> {after.mean_length:.1f} tokens"
    )
    gain = report.paired_gain  # after minus the baseline on the same problems, with the paired standard error
    what = f"the honest baseline ({baseline.max_new_tokens} new tokens, {baseline.accuracy:.3f})"
    say(
        f"      against {what if baseline is not before else 'the untrained model'}: gain {gain['diff']:+.3f} "
        f"+- {gain['se']:.3f} (paired standard error; {gain['b']} fixed, {gain['c']} broken of {gain['n']})"
    )
    print(
        f"accuracy: {report.accuracy_before:.3f} -> {report.accuracy_after:.3f} in {report.seconds_train:.0f} s "
        f"of training ({report.backend}); wrote {out}/final and {out}/report.json"
    )


def _load(preset: Preset, init, model_tok, eval_size) -> tuple:
    """``(model, tokenizer, task, held-out problems)``: the preset's model (or ``init``, or the caller's
    ``model_tok``), its compute dtype checked against the device, the task built with the tokenizer (chat prompts
    for chat models), ``eval_size`` different held-out problems fixed by ``HELDOUT_SEED``."""
    from grpo_lab.env import set_threads

    set_threads()
    model, tok = model_tok or load_for_preset(preset, name=init)
    _check_compute_dtype(model, preset)
    task = get_task(preset.task, tokenizer=tok, **preset.task_args)
    return model, tok, task, task.heldout_distinct(eval_size or preset.eval_size, seed=HELDOUT_SEED)


def _start_report(preset: Preset, backend, init, task: Task, heldout, model, t0) -> Report:
    return Report(
        preset=preset.name,
        backend=backend,
        model=init or preset.model,
        task=task.describe(),
        system_prompt=task.system if task.chat else None,
        seed=preset.grpo.get("seed", 0),
        data=getattr(task, "where", "") or f"{task.name} (hash split, seed {HELDOUT_SEED})",
        n_heldout=len(heldout),
        heldout_seed=HELDOUT_SEED,
        machine=machine_info(next(model.parameters()).device),
        seconds_load=round(time.perf_counter() - t0, 2),
        grpo_config=preset.grpo,
        runtime=preset.runtime.as_dict(),
    )


def _train_phase(model, tok, preset: Preset, task, out: Path, backend, progress, callbacks, resume, keep) -> tuple:
    g = preset.grpo
    ckpt = checkpoint_to_resume(resume, out)
    start = int(ckpt.name.split("-")[-1]) if ckpt is not None else 0
    if progress:
        print(
            f"[3/4] GRPO: {g['max_steps']} steps of {g['per_device_train_batch_size'] // g['num_generations']} "
            f"prompts x {g['num_generations']} completions (<= {g['max_completion_length']} tokens), "
            f"lr {g['learning_rate']}, seed {g['seed']}"
        )
    if ckpt is not None:  # said even without progress: the run is not starting from scratch
        print(f"      resuming from {ckpt} (step {start} of {g['max_steps']})")
    extra = [KeepLatestCheckpoints(out / "checkpoints", keep)] if keep and g.get("save_steps") else []
    bar = ProgressBar(g["max_steps"], show=progress, initial=start)
    try:
        return train_preset(
            model,
            tok,
            preset,
            out,
            task=task,
            backend=backend,
            progress=False,
            callbacks=[bar, *extra, *callbacks],
            resume_from_checkpoint=ckpt,
        )
    finally:
        bar.close()


def run_train(
    backend: str | None = None,
    preset: str | Preset | None = None,
    init: str | None = None,
    steps: int | None = None,
    out: str | Path | None = None,
    progress: bool = True,
    *,
    eval_size: int | None = None,
    k: int | None = None,
    model_tok=None,
    callbacks: Sequence[Callable] = (),
    n_samples: int = 3,
    seed: int | None = None,
    compute_dtype: str | None = None,
    save_steps: int | None = None,
    keep_checkpoints: int | None = None,
    resume=None,
    preset_name: str | None = None,
) -> Report:
    """One training job for every preset (``grpo-lab train``, module docstring): evaluate on ``eval_size``
    held-out problems (fixed by ``HELDOUT_SEED``), train, evaluate again; returns the ``Report`` it wrote.

    ``preset``: a name, a ``Preset`` (copied, never changed) or None (``choose_preset()``); ``preset_name`` is
    its old keyword. ``backend`` None: the preset's. ``seed``: the training seed (``grpo["seed"]``).
    ``compute_dtype``: "fp32" | "bf16" | "fp16", checked against the device before anything is evaluated.
    ``steps``/``eval_size``/``k``/``save_steps`` override the preset; ``keep_checkpoints``: delete all but the
    newest that many (the own backend). ``resume``: True (the latest checkpoint in ``out/checkpoints``) or a
    path (a previous ``out`` or a ``checkpoint-N`` folder; ``out`` defaults to its run folder): the training
    continues from that step and the report equals an uninterrupted run's, timings aside.
    """
    preset = prepare(preset if preset is not None else preset_name, steps, seed, compute_dtype, save_steps)
    backend = backend or preset.backend
    out = run_folder(resume, out, default=f"runs/train-{preset.name}-{backend}")
    say = print if progress else (lambda *a, **kw: None)
    t0 = time.perf_counter()
    say(f"[1/4] loading {init or preset.model} ({preset.name}, backend {backend})")
    model, tok, task, heldout = _load(preset, init, model_tok, eval_size)
    report = _start_report(preset, backend, init, task, heldout, model, t0)
    say(f"[2/4] the untrained model on {len(heldout)} different held-out problems of {task.describe()}")
    befores = _evaluate_before(model, tok, preset, task, heldout, k, report, say, model_tok is None and init is None)
    report.write(out)
    summary, history = _train_phase(
        model, tok, preset, task, out, backend, progress, callbacks, resume, keep_checkpoints
    )
    spec = {"task": preset.task, "task_args": preset.task_args, "preset": preset.name}
    write_json(out / "final" / TASK_FILE, {**spec, "eval_max_new_tokens": preset.runtime.get("eval_max_new_tokens")})
    say(f"[4/4] the trained model on the same {len(heldout)} problems")
    after = _evaluate_after(model, tok, preset, task, heldout, k, report, befores, n_samples, say)
    report.update(
        seconds_train=round(summary["seconds"], 2),
        steps=summary["steps"],
        resumed_from=summary.get("resumed_from"),
        history=history,
        machine_after=machine_info(),
        status="done",
    )
    report.write(out)
    _print_outcome(report, *befores, after, out, say)
    return report
