"""Distillation: fold one teacher, several teachers or a whole voting ensemble into one cheap student.

- ``kd``: token-level KD (Hinton et al., arXiv 1503.02531; generalized JSD, Agarwal et al., arXiv
  2306.13649, in TRL 1.16's ``beta`` convention), teacher mixtures and the shared-vocabulary check.
- ``data``: sequence-level KD data (Kim & Rush, arXiv 1606.07947): the teachers' answers, voted and verified,
  and TinyLLM-style rationales with one prompt prefix per teacher (Tian et al., arXiv 2402.04616).
- ``student``: the student trainer for both families. The GRPO-trained tiny teachers of the notebooks are a
  training job: ``grpo_lab.jobs.teachers``.

Both families run on the course's tiny char models, which all share one vocabulary.
"""

from __future__ import annotations

from grpo_lab.distill.data import (
    DistillExample,
    gold_dataset,
    rationale_dataset,
    teacher_answers,
    to_prompt_completion_rows,
    verified_dataset,
    voted_dataset,
)
from grpo_lab.distill.kd import (
    VocabularyMismatchError,
    check_same_vocabulary,
    divergence_per_token,
    forward_kl,
    generalized_jsd,
    kd_loss,
    mix_teachers,
    reverse_kl,
)
from grpo_lab.distill.student import (
    StudentResult,
    distill_batch,
    kd_eval_loss,
    train_student,
)

__all__ = [
    "VocabularyMismatchError",
    "check_same_vocabulary",
    "divergence_per_token",
    "kd_loss",
    "forward_kl",
    "reverse_kl",
    "generalized_jsd",
    "mix_teachers",
    "DistillExample",
    "teacher_answers",
    "voted_dataset",
    "verified_dataset",
    "rationale_dataset",
    "to_prompt_completion_rows",
    "distill_batch",
    "StudentResult",
    "train_student",
    "kd_eval_loss",
    "gold_dataset",
]
