"""Ensembles at inference time: voting, disagreement as uncertainty, iterative consensus.

- ``voting``: ``majority_vote`` (equivalent answers vote together, ties to the first seen), self-consistency
  (Wang et al., arXiv 2203.11171), vote weights derived from member accuracies.
- ``uncertainty``: AUROC, risk-coverage, calibration bins, ECE and the Brier score of a confidence.
- ``consensus``: iterative consensus in the style of ICE (Omar et al., medRxiv 10.1101/2024.12.25.24319629);
  ``ice_rounds`` measures revision rounds (change rate, convergence, tokens).
- ``smc``: sequential Monte Carlo steering (Lew et al., arXiv 2306.03081), the follower side of DisCIPL (Grand
  et al., arXiv 2504.07081): ``smc_steer`` with constraint potentials, ``best_of_n`` at a counted token budget,
  ``hf_proposal`` for a Hugging Face causal LM; ``smc_hf``: HF proposals, and the same for many prompts in lockstep, one forward
  pass per step (``smc_steer_many``, ``best_of_n_many``, ``HFMultiProposal``).
- ``sampling``: real models as voters (``sample_answers``) and as consensus members (``hf_generator``).

The cost model of an ensemble (FLOPs, dated prices, expected vote accuracy) is ``grpo_lab.cost``.
"""

from __future__ import annotations

from grpo_lab.ensemble.consensus import (
    DEFAULT_CONSENSUS_SYSTEM,
    BatchMember,
    ConsensusResult,
    ConsensusRound,
    ConsensusTurn,
    Generator,
    IceRound,
    IceRun,
    Member,
    consensus_prompt,
    ice_many,
    ice_rounds,
    iterative_consensus,
    revision_prompt,
    same_text,
)
from grpo_lab.ensemble.sampling import hf_generator, sample_answers
from grpo_lab.ensemble.smc import (
    BestOfN,
    Particle,
    SMCResult,
    best_of_n,
    best_of_n_loop,
    drive,
    ess,
    greedy_loop,
    resample,
    sample_loop,
    sample_many,
    sample_once,
    smc_loop,
    smc_steer,
)
from grpo_lab.ensemble.smc_hf import (
    HFMultiProposal,
    HFProposal,
    best_of_n_many,
    drive_many,
    hf_proposal,
    smc_steer_many,
)
from grpo_lab.ensemble.uncertainty import (
    area_under_risk_coverage,
    auroc,
    brier_score,
    calibration_bins,
    expected_calibration_error,
    risk_coverage,
)
from grpo_lab.ensemble.voting import (
    Vote,
    agreement_rate,
    estimate_wrong_answers,
    fit_vote_weights,
    majority_vote,
    self_consistency,
    vote_entropy,
    vote_items,
)

__all__ = [
    "Vote",
    "majority_vote",
    "vote_items",
    "self_consistency",
    "fit_vote_weights",
    "estimate_wrong_answers",
    "agreement_rate",
    "vote_entropy",
    "auroc",
    "risk_coverage",
    "area_under_risk_coverage",
    "expected_calibration_error",
    "calibration_bins",
    "brier_score",
    "Generator",
    "DEFAULT_CONSENSUS_SYSTEM",
    "ConsensusTurn",
    "ConsensusRound",
    "ConsensusResult",
    "iterative_consensus",
    "consensus_prompt",
    "Member",
    "IceRound",
    "IceRun",
    "revision_prompt",
    "same_text",
    "ice_rounds",
    "ice_many",
    "BatchMember",
    "hf_generator",
    "sample_answers",
    "smc_steer",
    "SMCResult",
    "Particle",
    "ess",
    "resample",
    "best_of_n",
    "BestOfN",
    "hf_proposal",
    "HFProposal",
    "sample_once",
    "sample_many",
    "sample_loop",
    "smc_loop",
    "best_of_n_loop",
    "drive",
    "greedy_loop",
    "HFMultiProposal",
    "smc_steer_many",
    "best_of_n_many",
    "drive_many",
]
