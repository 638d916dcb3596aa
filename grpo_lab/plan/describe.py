"""The text of ``grpo-lab train --preset NAME --dry-run`` (``describe_plan``)."""

from __future__ import annotations

from grpo_lab.plan.core import GiB, estimate, runtime_of
from grpo_lab.plan.devices import source_kinds


def _fmt_bytes(b: float) -> str:
    return f"{b / GiB:7.2f} GiB" if b >= 0.1 * GiB else f"{b / 1024**2:7.1f} MiB"


def _fmt_s(s: float) -> str:
    if s >= 120:
        return f"{s / 60:.1f} min"
    return f"{s:.3g} s" if s >= 0.01 else f"{s * 1e3:.2g} ms"


def _header(preset, g: dict, rt: dict, est) -> list[str]:
    n_prompts = g.get("per_device_train_batch_size", 0) // max(1, g.get("num_generations", 1))
    warm = g.get("warmup_steps") or 0
    lines = [
        f"preset      {preset.name}  ({preset.hardware})",
        f"            {preset.description}",
        f"model       {preset.model}  ({est.params / 1e6:.2f}M parameters; trainable {est.trainable / 1e6:.2f}M"
        f"{' with LoRA r=' + str(rt['lora_r']) if rt['use_peft'] else ''})",
        f"task        {preset.task}  (held-out eval subset: {preset.eval_size} problems)",
        f"GRPO        {n_prompts} prompts x G={g.get('num_generations')} = {g.get('per_device_train_batch_size')} "
        f"completions/step, max_completion_length={g.get('max_completion_length')}, steps={g.get('max_steps')}",
        f"            learning_rate={g.get('learning_rate')} ({g.get('lr_scheduler_type', 'linear')}"
        f"{f', {warm} warmup steps' if warm else ''}), beta={g.get('beta')}, loss_type={g.get('loss_type')}, "
        f"scale_rewards={g.get('scale_rewards', 'group')}, epsilon={g.get('epsilon', 0.2)}/"
        f"{g.get('epsilon_high') or g.get('epsilon', 0.2)}, temperature={g.get('temperature', 1.0)}",
        f"backend     {est.backend} (grpo-lab train --backend overrides it)",
        f"machine     weights {rt['dtype']}, compute {rt['compute_dtype'] or rt['dtype']}, gradient_checkpointing="
        f"{rt['gradient_checkpointing']}, LoRA={'on (peft)' if rt['use_peft'] else 'off'}",
    ]
    if preset.sft:
        lines.append(f"SFT         warm start: {preset.sft}")
    if preset.notes:
        lines.append(f"notes       {preset.notes}")
    return lines


def describe_plan(preset, steps: int | None = None, device: str | None = None) -> str:
    """The dry-run text: model, task, GRPO knobs (TRL names), machine settings, then the ESTIMATED peak memory by
    component and phase for the preset's backend (full fine-tuning vs LoRA, the other backend), time per step
    with the generation floor, the evaluations and the total; and which inputs were measured, quoted or assumed
    (``plan.devices.SOURCES``).

    Builds and downloads nothing; works for every registered preset on a CPU. ``steps`` overrides ``max_steps``
    for the total-time line; ``device`` estimates on another ``DEVICES`` class.
    """
    rt = runtime_of(preset)
    g = dict(preset.grpo)
    if steps is not None:
        g["max_steps"] = steps
    est = estimate(preset, device=device)
    alt = estimate(preset, device=device, use_peft=not rt["use_peft"])
    other = estimate(preset, device=device, backend="grpo_lab" if est.backend == "trl" else "trl")
    full, lora = (alt, est) if rt["use_peft"] else (est, alt)
    dev = est.device
    lines = _header(preset, g, rt, est)
    lines += [
        "",
        f"ESTIMATES for {dev.name}, backend {est.backend} (arithmetic from the model size and the inputs below, "
        "not measurements; grpo_lab/plan):",
    ]
    for k, v in est.memory.items():
        lines.append(f"  {k:<52}{_fmt_bytes(v)}")
    if dev.overhead_gib:
        lines.append(f"  {'CUDA context + allocator slack':<52}{_fmt_bytes(dev.overhead_gib * GiB)}")
    ph = est.phases
    lines.append(
        "  phases: resident {:.2f} + max(rollout {:.2f}, update {:.2f}, optimizer {:.2f}) GiB".format(
            *(ph[k] / GiB for k in ("resident", "rollout", "update", "optimizer"))
        )
    )
    fits = "fits" if est.peak_gib <= dev.memory_gib else "DOES NOT FIT"
    lines += [
        f"  {'peak memory (estimate)':<52}{est.peak_gib:7.2f} GiB  ({fits} in {dev.memory_gib:g} GiB)",
        f"  full fine-tune vs LoRA r={rt['lora_r']} peak (estimate): {full.peak_gib:.2f} GiB vs {lora.peak_gib:.2f} GiB; "
        f"backend {other.backend}: {other.peak_gib:.2f} GiB",
        f"  time per step (estimate): {_fmt_s(est.step_seconds)} (generation {_fmt_s(est.gen_seconds)}, of which the "
        f"per-token floor alone {_fmt_s(est.gen_floor_seconds)}; update {_fmt_s(est.train_seconds)}); every completion "
        "at the length cap",
        f"  one evaluation (estimate): {_fmt_s(est.eval_seconds)} ({preset.eval_size} problems, "
        f"k={rt.get('eval_k') or 1}, {rt.get('eval_max_new_tokens') or g.get('max_completion_length')} new tokens, "
        "every batch to the budget)",
    ]
    n = g.get("max_steps", 0)
    extra = ", pass@n and transfer evaluations" if rt.get("eval_pass_n") or rt.get("transfer_task_args") else ""
    base = f" + generous baseline 2 x {_fmt_s(est.baseline_eval_seconds)}" if est.baseline_eval_seconds else ""
    lines.append(
        f"  total (estimate): {_fmt_s(est.total_seconds(n))} = {n} steps {_fmt_s(n * est.step_seconds)} + "
        f"evaluation before and after {_fmt_s(2 * est.eval_seconds)}{base} (+ model loading{extra})"
    )
    lines.append(f"  inputs ({dev.name}): {source_kinds(dev)} (grpo_lab/plan/devices.py SOURCES)")
    return "\n".join(lines)
