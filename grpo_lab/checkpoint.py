"""Checkpoints of the from-scratch trainers in Hugging Face's layout, written atomically, for exact resumes.

``output_dir/checkpoint-N/`` holds what transformers' ``Trainer`` writes, so the folder loads with
``from_pretrained`` and reads like a TRL run's:

- the weights by ``save_pretrained`` (``config.json``, ``model.safetensors``; a peft model's adapter), and
  the tokenizer's files when it has ``save_pretrained``;
- ``optimizer.pt``, ``scheduler.pt``, ``scaler.pt`` (fp16's ``GradScaler``, when one is used);
- ``rng_state.pth``: Python's, NumPy's, torch's CPU (and CUDA) generators, plus the trainer's own two: the
  prompt order (``prompt_order``) and the sampling generator (``generator``);
- ``trainer_state.json`` (transformers' ``TrainerState``: ``global_step``, ``log_history``, ...), and
  ``training_args.json`` (the config, for reading);
- extra modules a trainer names (PPO's critic: ``value_model.pt``).

Atomic: everything goes into the sibling ``tmp-checkpoint-N`` (the name transformers uses too), every file
and the folder are fsynced, then one ``rename`` makes ``checkpoint-N``. A process killed mid-write leaves no
``checkpoint-N`` or a complete one; ``latest_checkpoint`` ignores ``tmp-*`` folders and the next save (or
resume) removes them. With the same weights, optimizer, schedule and generators, a resumed run repeats an
uninterrupted one bit for bit (tested).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from transformers import TrainerState

from grpo_lab.errors import ConfigError, MissingDataError
from grpo_lab.models.smollm2 import hf_bars_off

STATE = "trainer_state.json"
_NAME = re.compile(r"^checkpoint-(\d+)$")


def latest_checkpoint(output_dir: str | Path) -> Path | None:
    """The complete ``checkpoint-N`` with the largest N in ``output_dir``, or None (``tmp-*`` ignored)."""
    d = Path(output_dir)
    if not d.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _NAME.match(p.name)) and (p / STATE).is_file()]
    return max(found)[1] if found else None


def resolve(resume_from_checkpoint: str | Path | bool, output_dir: str | Path | None) -> Path:
    """The folder to resume from: True -> the latest in ``output_dir``; a ``checkpoint-N`` folder as given;
    a folder of checkpoints -> its latest. Raises ``ConfigError`` when there is none."""
    where = output_dir if resume_from_checkpoint is True else resume_from_checkpoint
    if where is None:
        raise ConfigError("resume_from_checkpoint=True needs args.output_dir (where checkpoint-N folders are)")
    where = Path(where)
    if (where / STATE).is_file():
        return where
    found = latest_checkpoint(where)
    if found is None:
        raise ConfigError(f"no complete checkpoint-N folder in {where}: nothing to resume from")
    return found


def clean_partial(output_dir: Path) -> None:
    """Remove ``tmp-checkpoint-*`` folders left by a process killed mid-save."""
    if output_dir.is_dir():
        for p in output_dir.glob("tmp-checkpoint-*"):
            shutil.rmtree(p, ignore_errors=True)


def _fsync(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # a folder cannot be opened on Windows; its rename is still atomic
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def rng_state(trainer) -> dict:
    """Every random generator a step reads, as tensors and plain values (``torch.load(weights_only=True)``)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)),
        "cpu": torch.get_rng_state(),
        "prompt_order": trainer.rng.getstate(),
        "generator": trainer.gen.get_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(trainer, state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["cpu"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    trainer.rng.setstate(state["prompt_order"])
    trainer.gen.set_state(state["generator"])


def save(trainer, output_dir: Path) -> Path:
    """Write ``output_dir/checkpoint-<global_step>`` atomically (module docstring); returns its path."""
    final = output_dir / f"checkpoint-{trainer.state.global_step}"
    tmp = output_dir / f"tmp-{final.name}"
    clean_partial(output_dir)
    tmp.mkdir(parents=True)
    with hf_bars_off():  # "Writing model shards" bars would land in a notebook's stored output
        trainer.model.save_pretrained(tmp)
    if hasattr(trainer.processing_class, "save_pretrained"):
        trainer.processing_class.save_pretrained(tmp)
    torch.save(trainer.opt.state_dict(), tmp / "optimizer.pt")
    torch.save(trainer.sched.state_dict(), tmp / "scheduler.pt")
    if trainer.scaler is not None:
        torch.save(trainer.scaler.state_dict(), tmp / "scaler.pt")
    torch.save(rng_state(trainer), tmp / "rng_state.pth")
    for stem, module in trainer.extra_state().items():
        torch.save(module.state_dict(), tmp / f"{stem}.pt")
    (tmp / "training_args.json").write_text(json.dumps(asdict(trainer.args), indent=2, sort_keys=True) + "\n")
    trainer.state.save_to_json(tmp / STATE)
    for p in tmp.rglob("*"):
        if p.is_file():
            _fsync(p)
    _fsync(tmp)
    if final.exists():  # a step saved again after resuming from an earlier checkpoint
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync(output_dir)
    return final


def load_weights(model, folder: Path) -> None:
    """Load ``save_pretrained`` weights into ``model`` in place (a peft adapter, sharded or single file)."""
    from safetensors.torch import load_file

    if (folder / "adapter_config.json").is_file() and hasattr(model, "disable_adapter"):
        from peft import set_peft_model_state_dict

        set_peft_model_state_dict(model, load_file(folder / "adapter_model.safetensors"))
        return
    if (folder / "model.safetensors.index.json").is_file():
        from transformers.modeling_utils import load_sharded_checkpoint

        load_sharded_checkpoint(model, folder, strict=False)
        return
    sd = load_file(folder / "model.safetensors")
    missing, unexpected = model.load_state_dict(sd, strict=False)
    current = model.state_dict()
    loaded = {current[k].data_ptr() for k in sd if k in current}
    untied = [k for k in missing if current[k].data_ptr() not in loaded]  # tied weights are not saved twice
    if unexpected or untied:
        raise ConfigError(f"checkpoint {folder} does not fit this model: missing {untied}, unexpected {unexpected}")


def load(trainer, folder: Path) -> None:
    """Restore everything ``save`` wrote into ``trainer`` (same architecture and config)."""
    if not (folder / STATE).is_file():
        raise MissingDataError(f"no {STATE} in {folder}: pass a checkpoint-N folder written by save_checkpoint")
    load_weights(trainer.model, folder)
    trainer.opt.load_state_dict(torch.load(folder / "optimizer.pt", weights_only=True, map_location="cpu"))
    trainer.sched.load_state_dict(torch.load(folder / "scheduler.pt", weights_only=True))
    if trainer.scaler is not None and (folder / "scaler.pt").is_file():
        trainer.scaler.load_state_dict(torch.load(folder / "scaler.pt", weights_only=True))
    for stem, module in trainer.extra_state().items():
        module.load_state_dict(torch.load(folder / f"{stem}.pt", weights_only=True, map_location="cpu"))
    set_rng_state(trainer, torch.load(folder / "rng_state.pth", weights_only=True))
    trainer.state = TrainerState.load_from_json(str(folder / STATE))
    trainer.state.max_steps = trainer.args.max_steps  # a resumed run may be asked to go further
    clean_partial(folder.parent)
