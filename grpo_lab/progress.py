"""The training progress bar both backends draw (``loop.train_loop`` for the from-scratch trainers,
``trl_backend.train_with_trl`` for TRL's), so a run looks the same whichever trainer ran it."""

from __future__ import annotations

__all__ = ["StepBar"]


class StepBar:
    """The training bar of both backends: a tqdm bar over steps, described ``desc``, fed one history record a
    step; its postfix is ``postfix(rec)`` (default: the step's mean reward) plus, on evaluation steps, the
    held-out accuracy (``eval_acc``)."""

    def __init__(self, total: int, *, initial: int = 0, desc: str = "GRPO", postfix=None, show: bool = True):
        from tqdm.auto import tqdm

        self.postfix = postfix or (
            lambda rec: {"reward": f"{rec['reward']:.2f}"} if rec.get("reward") is not None else {}
        )
        self.bar = tqdm(total=total, initial=initial, desc=desc, disable=not show)

    def __call__(self, rec: dict) -> None:
        extra = {"eval_acc": f"{rec['eval_accuracy']:.2f}"} if rec.get("eval_accuracy") is not None else {}
        self.bar.set_postfix({**self.postfix(rec), **extra})
        self.bar.update(1)

    def close(self) -> None:
        self.bar.close()
