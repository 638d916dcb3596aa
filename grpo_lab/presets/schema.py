"""A preset's schema: ``Preset`` (one training recipe) and ``Runtime`` (its machine settings, typed)."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, fields

from grpo_lab.errors import UnknownNameError


@dataclass
class Runtime:
    """The machine settings of a preset (what is not a GRPO knob); None means "not set" (the code's default).

    ``dtype`` (trainable weights: fp32 master weights under mixed precision), ``compute_dtype`` (autocast: fp16
    on a T4, which has no bf16; bf16 on Ampere+), ``gradient_checkpointing``, ``use_peft`` with
    ``lora_r``/``lora_alpha`` (needs ``pip install peft``), ``prompt_length`` (tokens, for estimates),
    ``eval_k`` (samples per problem for pass@k / majority@k), ``eval_max_new_tokens`` (the evaluation budget,
    the training cap on the CPU presets), ``baseline_max_new_tokens`` (a generous budget for the untrained
    model's honest baseline), ``use_vllm`` (TRL backend only: ``pip install "grpo-lab[vllm]"``) with TRL 1.16's ``vllm_gpu_memory_utilization``
    (colocate's share of GPU memory), ``vllm_enable_sleep_mode`` and ``vllm_max_model_length`` (``trl_backend.vllm_kwargs``),
    ``eval_pass_n`` samples a problem for the unbiased pass@k before and after, on the first ``eval_pass_size``
    held-out problems, and ``transfer_task_args`` (task settings, e.g. ``{"families": "unseen"}``) for a second
    held-out set of ``transfer_size`` problems reported beside the first (does the skill transfer?).

    A typed record, so a misspelt setting fails loudly (``Runtime(lora_rank=8)`` names the valid fields). It also
    reads like the dict it used to be (``rt.get("eval_k", 0)``, ``rt["dtype"]``, ``{**rt}``, ``rt.update(...)``:
    only the set fields), because the backends, ``plan`` and notebook 06 read it that way.
    """

    dtype: str | None = None
    compute_dtype: str | None = None
    gradient_checkpointing: bool | None = None
    use_peft: bool | None = None
    lora_r: int | None = None
    lora_alpha: int | None = None
    prompt_length: int | None = None
    eval_k: int | None = None
    eval_max_new_tokens: int | None = None
    baseline_max_new_tokens: int | None = None
    use_vllm: bool | None = None
    vllm_gpu_memory_utilization: float | None = None
    vllm_enable_sleep_mode: bool | None = None
    vllm_max_model_length: int | None = None
    eval_pass_n: int | None = None
    eval_pass_size: int | None = None
    transfer_task_args: dict | None = None
    transfer_size: int | None = None

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def check_names(cls, names, what: str = "runtime setting") -> None:
        unknown = sorted(set(names) - set(cls.names()))
        if unknown:
            raise UnknownNameError(f"unknown {what}(s) {unknown}; valid: {', '.join(cls.names())}")

    @classmethod
    def of(cls, value) -> Runtime:
        """A ``Runtime`` from a ``Runtime`` (copied), a mapping of settings (checked) or None (all unset)."""
        if isinstance(value, Runtime):
            return copy.copy(value)
        value = dict(value or {})
        cls.check_names(value)
        return cls(**value)

    def update(self, other=(), **settings) -> None:
        settings = {**dict(other), **settings}
        self.check_names(settings)
        for k, v in settings.items():
            setattr(self, k, v)

    def __setattr__(self, name, value):
        if name not in self.names():
            self.check_names([name])
        object.__setattr__(self, name, value)

    def as_dict(self) -> dict:
        """The set fields (not None), as a plain dict (what ``report.json`` keeps)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not None}

    # The dict-like reading: only the set fields exist.
    def keys(self):
        return self.as_dict().keys()

    def __iter__(self):
        return iter(self.as_dict())

    def __len__(self) -> int:
        return len(self.as_dict())

    def __contains__(self, name) -> bool:
        return getattr(self, name, None) is not None if name in self.names() else False

    def __getitem__(self, name):
        if name not in self:
            self.check_names([name])
            raise KeyError(name)
        return getattr(self, name)

    def __setitem__(self, name, value) -> None:
        self.update({name: value})

    def get(self, name, default=None):
        self.check_names([name])
        value = getattr(self, name)
        return default if value is None else value


_dataclass_init = Runtime.__init__


def _checked_init(self, *args, **settings):
    Runtime.check_names(settings)
    _dataclass_init(self, *args, **settings)


Runtime.__init__ = _checked_init  # Runtime(lora_rank=8) names the valid fields instead of a bare TypeError

_DICT_FIELDS = ("grpo", "sft", "runtime", "task_args")


@dataclass
class Preset:
    """One training recipe.

    ``model``: a ``models.load_model`` name (``"tiny:<size>"``, ``"smollm2"``, a hub id); ``task``: a
    ``tasks.get_task`` name, built with ``task_args`` (its settings and ``system``, the chat system prompt);
    ``backend``: the trainer ``grpo-lab train`` uses unless told (``grpo_lab`` or ``trl``); ``grpo``:
    ``trainer.GRPOConfig`` fields (TRL names); ``sft``: ``sft_train`` keyword arguments (empty = no warm start);
    ``eval_size``: held-out problems scored before and after; ``runtime``: the machine settings (``Runtime``;
    a dict is converted and checked; empty for the char-level presets).

    Jobs take a ``Preset`` (or a name, ``get_preset``); make a variant with ``replace``, never by editing the
    registry: ``get_preset("cpu-addition").replace(model="tiny:nano", grpo={"max_steps": 4})``.
    """

    name: str
    description: str
    model: str
    task: str
    grpo: dict
    sft: dict = field(default_factory=dict)
    eval_size: int = 500
    hardware: str = "cpu"
    notes: str = ""
    runtime: Runtime = field(default_factory=Runtime)
    task_args: dict = field(default_factory=dict)
    backend: str = "grpo_lab"

    def __setattr__(self, name, value):
        # runtime is always a Runtime: a dict assigned to it (``p.runtime = {...}``) is converted and checked.
        object.__setattr__(self, name, Runtime.of(value) if name == "runtime" else value)

    @staticmethod
    def field_names() -> list[str]:
        return [f.name for f in fields(Preset)]

    def replace(self, **changes) -> Preset:
        """A deep copy with ``changes`` applied; the original is untouched.

        Plain fields (``name``, ``model``, ``task``, ``eval_size``, ``backend``, ...) are replaced. The dict
        fields ``grpo``, ``sft``, ``task_args`` and ``runtime`` are *updated* with the mapping given (pass the
        keys to change, not the whole dict): ``replace(grpo={"max_steps": 4}, runtime={"eval_k": 0})``. A
        ``grpo`` key must be a ``GRPOConfig`` field, a ``runtime`` key a ``Runtime`` field; an unknown name
        raises ``UnknownNameError`` listing the valid ones.
        """
        valid = self.field_names()
        unknown = sorted(set(changes) - set(valid))
        if unknown:
            raise UnknownNameError(
                f"unknown preset field(s) {unknown}; valid: {', '.join(valid)} "
                "(GRPO knobs go in grpo={...}, machine settings in runtime={...})"
            )
        p = copy.deepcopy(self)
        for k, v in changes.items():
            if k == "grpo":
                check_grpo_names(v)
            if k in _DICT_FIELDS:
                getattr(p, k).update(v)
            else:
                setattr(p, k, v)
        return p

    def copy(self, **grpo_overrides) -> Preset:
        """``replace(grpo=...)`` for the GRPO knobs only, None values ignored (notebook 05's spelling)."""
        return self.replace(grpo={k: v for k, v in grpo_overrides.items() if v is not None})

    def to_dict(self) -> dict:
        """The preset as plain data (``runtime`` as its set fields)."""
        return {k: getattr(self, k) if k != "runtime" else self.runtime.as_dict() for k in self.field_names()}


def check_grpo_names(knobs: Mapping) -> None:
    """Refuse a GRPO knob the from-scratch ``GRPOConfig`` does not have (a ``ConfigError`` listing the valid ones,
    the same check and message as ``GRPOConfig.from_dict``)."""
    from grpo_lab.config import GRPOConfig, check_names

    check_names(GRPOConfig, knobs, "GRPO")
