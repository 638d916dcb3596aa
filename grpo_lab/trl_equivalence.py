"""Run TRL 1.16's own GRPO loss on tensors you choose, to compare it with ``grpo_lab.grpo`` (notebook 03).

``trl_loss(...)`` builds a real ``trl.GRPOTrainer`` on a tiny local model (saved to a temporary folder,
because with ``beta > 0`` TRL reloads the reference model from ``config._name_or_path``), replaces only its
model forward (``_get_per_token_logps_and_entropies``) with the log-probs you pass, and calls its
``_compute_loss``. Everything from the importance ratio to the aggregation is TRL's code, unchanged.

Single process, no gradient accumulation, CPU, float64 welcome. Importing this module does not import TRL;
the first call does (about 8 s), later calls reuse the saved model (a trainer builds in ~0.1 s).
"""

from __future__ import annotations

import functools
import logging
import re
import tempfile
import warnings

import torch


@functools.lru_cache(maxsize=1)
def _model_dir() -> str:
    from grpo_lab.models import build_tiny_model
    from grpo_lab.models.smollm2 import hf_bars_off

    d = tempfile.mkdtemp(prefix="grpo_lab_trl_eq_")
    model, tok = build_tiny_model("nano", seed=0)
    with hf_bars_off():
        model.save_pretrained(d)
    tok.save_pretrained(d)
    return d


def _config(GRPOConfig, d, loss_type, beta, epsilon, epsilon_high, level, max_completion_length, batch, bias_kl):
    # use_bias_correction_kl is passed, never defaulted: TRL's default for it has changed between releases.
    return GRPOConfig(
        output_dir=f"{d}/out",
        bf16=False,
        use_cpu=True,
        report_to=[],
        save_strategy="no",
        loss_type=loss_type,
        beta=beta,
        epsilon=epsilon,
        epsilon_high=epsilon_high,
        importance_sampling_level=level,
        num_generations=2,
        per_device_train_batch_size=batch,
        max_completion_length=max_completion_length,
        use_bias_correction_kl=bias_kl,
    )


_NOTICES: list[str] = []  # what TRL's trainer logged while trl_loss built it, in order, without repeats


class _Keep(logging.Handler):
    def emit(self, record):
        text = re.sub(r"^\[RANK \d+\] ", "", record.getMessage())
        if text not in _NOTICES:
            _NOTICES.append(text)


class _notices_kept:
    """Collect TRL's ``GRPOTrainer`` log lines into ``trl_notices()`` instead of printing them: a notebook that
    compares the loss on many configurations would print the same notice once per configuration."""

    def __enter__(self):
        self.log = logging.getLogger("trl.trainer.grpo_trainer")
        self.handler, self.propagate, self.level = _Keep(), self.log.propagate, self.log.level
        self.log.addHandler(self.handler)
        self.log.propagate = False
        self.log.setLevel(logging.WARNING)  # kept even where TRL's or transformers' verbosity was turned down

    def __exit__(self, *exc):
        self.log.removeHandler(self.handler)
        self.log.propagate = self.propagate
        self.log.setLevel(self.level)


def trl_notices() -> list[str]:
    """The distinct messages TRL's ``GRPOTrainer`` logged while ``trl_loss`` built its trainers (e.g. that with
    ``importance_sampling_level="sequence"`` the ``bnpo``/``dr_grpo``/``dapo`` losses weight each sequence by its
    length, so they are not GSPO's per-sequence objective), without TRL's ``[RANK n]`` prefix."""
    return list(_NOTICES)


@functools.lru_cache(maxsize=32)
def _trainer(
    loss_type: str,
    beta: float,
    epsilon: float,
    epsilon_high,
    level: str,
    max_completion_length: int,
    batch: int,
    bias_kl: bool,
):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    from grpo_lab.models import load_tokenizer

    d = _model_dir()
    with warnings.catch_warnings():  # transformers' deprecation notices are noise in a notebook
        warnings.simplefilter("ignore")
        args = _config(
            GRPOConfig, d, loss_type, beta, epsilon, epsilon_high, level, max_completion_length, batch, bias_kl
        )
    ds = Dataset.from_dict({"prompt": ["1+1="] * 2})
    from grpo_lab.models.smollm2 import hf_bars_off

    with warnings.catch_warnings(), _notices_kept(), hf_bars_off():
        warnings.simplefilter("ignore")
        trainer = GRPOTrainer(
            model=d,
            reward_funcs=lambda completions, **kw: [0.0] * len(completions),
            args=args,
            train_dataset=ds,
            processing_class=load_tokenizer(d),
        )
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1  # normally set by the training loop
    return trainer


def trl_loss(
    logps: torch.Tensor,
    old_logps: torch.Tensor | None,
    advantages: torch.Tensor,
    completion_mask: torch.Tensor,
    *,
    ref_logps: torch.Tensor | None = None,
    beta: float = 0.0,
    epsilon: float = 0.2,
    epsilon_high: float | None = None,
    loss_type: str = "dapo",
    max_completion_length: int | None = None,
    importance_sampling_level: str = "token",
    use_bias_correction_kl: bool = True,
) -> torch.Tensor:
    """TRL 1.16's ``GRPOTrainer._compute_loss`` on the given per-token log-probs (same arguments as ``grpo_loss``).

    ``use_bias_correction_kl`` is set explicitly on TRL's config (its default differs across TRL releases), with
    the same default as ``grpo_loss``. ``max_completion_length`` defaults to the mask width T. ``B`` (rows) must be even (TRL's batch must hold
    whole groups; the group size, 2 here, does not enter the loss). Returns the scalar loss (differentiable
    in ``logps``).
    """
    B, T = logps.shape
    if B % 2:
        raise ValueError(
            "trl_loss needs an even number of completions (TRL checks the batch against num_generations=2)"
        )
    trainer = _trainer(
        loss_type,
        float(beta),
        float(epsilon),
        epsilon_high,
        importance_sampling_level,
        int(max_completion_length or T),
        B,
        bool(use_bias_correction_kl),
    )
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (logps, torch.zeros_like(logps), None)
    mask = completion_mask.long()
    inputs = {
        "prompt_ids": torch.ones(B, 1, dtype=torch.long),
        "prompt_mask": torch.ones(B, 1, dtype=torch.long),
        "completion_ids": torch.ones(B, T, dtype=torch.long),
        "completion_mask": mask,
        "advantages": advantages.to(logps.dtype),
        "num_items_in_batch": mask.sum(),
    }
    if old_logps is not None:
        inputs["old_per_token_logps"] = old_logps
    if beta:
        if ref_logps is None:
            raise ValueError("beta > 0 needs ref_logps")
        inputs["ref_per_token_logps"] = ref_logps
    return trainer._compute_loss(trainer.model, inputs)
