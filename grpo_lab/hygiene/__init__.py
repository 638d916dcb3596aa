"""The synthetic ceiling's two concepts (notebook 09): model collapse and data hygiene.

- ``collapse``: diversity and distribution measures (distinct-n, answer entropy, tail mass) and the Gaussian
  fit-resample-refit recursion. The tiny-LM recursion trains models, so it is a job:
  ``grpo_lab.jobs.collapse.lm_collapse``.
- ``dedup``: exact and near duplicates (MinHash LSH), ``dedup`` and train/test ``contamination``.
"""

from grpo_lab.hygiene.collapse import (
    CollapseRun,
    answer_entropy,
    distinct_n,
    gaussian_collapse,
    ngrams,
    reference_band,
    tail_mass,
)
from grpo_lab.hygiene.dedup import (
    ContaminationReport,
    char_shingles,
    contamination,
    dedup,
    exact_duplicates,
    jaccard,
    minhash_signature,
    near_duplicates,
    normalize_text,
    task_contamination,
)

__all__ = [
    "ngrams",
    "distinct_n",
    "answer_entropy",
    "tail_mass",
    "reference_band",
    "CollapseRun",
    "gaussian_collapse",
    "normalize_text",
    "char_shingles",
    "jaccard",
    "exact_duplicates",
    "minhash_signature",
    "near_duplicates",
    "dedup",
    "ContaminationReport",
    "contamination",
    "task_contamination",
]
