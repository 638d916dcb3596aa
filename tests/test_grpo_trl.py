"""grpo_lab.grpo against TRL 1.16's own code path: the loss, its gradient, its metrics and the advantages.

A real ``trl.GRPOTrainer`` is built on a tiny local model for each configuration (construction takes ~0.1 s
once TRL is imported). Its ``_compute_loss`` runs unchanged except that the model forward
(``_get_per_token_logps_and_entropies``) is replaced by crafted float64 log-probs, so every line from the
importance ratio to the aggregation and the clip metrics is TRL's. Advantages go through TRL's
``_generate_and_score_completions`` with crafted rewards in place of the reward functions.
"""

from __future__ import annotations

import functools
import warnings

import pytest
import torch

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from grpo_lab.grpo import group_advantages, grpo_loss, grpo_loss_terms  # noqa: E402

TOL = 1e-6
B, G, T, L_MAX = 8, 4, 7, 10  # 2 prompts x 4 completions; L_MAX > T so dr_grpo's constant is really the config's
LENGTHS = [7, 3, 5, 1, 7, 0, 6, 2]  # ragged, including an empty (fully masked) completion
LOSS_TYPES = ["grpo", "bnpo", "dr_grpo", "dapo"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from grpo_lab.models import build_tiny_model

    d = tmp_path_factory.mktemp("nano")
    model, tok = build_tiny_model("nano", seed=0)
    # TRL reloads the reference model from config._name_or_path when beta > 0: it must exist on disk.
    model.save_pretrained(d)
    tok.save_pretrained(d)
    return str(d)


@pytest.fixture(scope="module")
def make_trainer(model_dir, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("out"))

    @functools.cache
    def make(
        loss_type="dapo",
        beta=0.0,
        epsilon=0.2,
        epsilon_high=None,
        level="token",
        num_generations=G,
        scale_rewards="group",
        batch=B,
        max_completion_length=L_MAX,
    ):
        from datasets import Dataset
        from trl import GRPOConfig, GRPOTrainer

        from grpo_lab.models import load_tokenizer

        args = GRPOConfig(
            output_dir=out,
            bf16=False,
            use_cpu=True,
            report_to=[],
            save_strategy="no",
            logging_steps=1,
            loss_type=loss_type,
            beta=beta,
            epsilon=epsilon,
            epsilon_high=epsilon_high,
            importance_sampling_level=level,
            num_generations=num_generations,
            scale_rewards=scale_rewards,
            per_device_train_batch_size=batch,
            max_completion_length=max_completion_length,
        )
        ds = Dataset.from_dict({"prompt": ["1+2=", "3+4="] * 4})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer = GRPOTrainer(
                model=model_dir,
                reward_funcs=lambda completions, **kw: [0.0] * len(completions),
                args=args,
                train_dataset=ds,
                processing_class=load_tokenizer(model_dir),
            )
        trainer.model.train()  # the "train" branch of _compute_loss, the one that matters
        trainer.current_gradient_accumulation_steps = 1  # set by Trainer's loop; one micro-batch per step here
        return trainer

    return make


def _mask(lengths=LENGTHS, t=T):
    return (torch.arange(t)[None, :] < torch.tensor(lengths)[:, None]).long()


def _batch(seed: int, off_policy: float = 0.4, ref_scale: float = 0.5):
    """Random float64 log-probs whose ratios leave [1 - eps, 1 + eps_high] often, and advantages of both signs."""
    g = torch.Generator().manual_seed(seed)
    lp = -3 * torch.rand(B, T, generator=g, dtype=torch.float64) - 0.05
    # Token noise plus a per-sequence shift, so sequence-level (GSPO) ratios leave the clip range as well.
    old = lp + off_policy * (
        torch.randn(B, T, generator=g, dtype=torch.float64) + torch.randn(B, 1, generator=g, dtype=torch.float64)
    )
    ref = lp + ref_scale * torch.randn(B, T, generator=g, dtype=torch.float64)
    rewards = torch.randint(0, 3, (B,), generator=g).double()
    rewards[:G] = torch.tensor([0.0, 1.0, 0.0, 2.0])  # make sure the first group has signal
    adv = group_advantages(rewards, G)
    return lp, old, ref, adv


def _trl_loss(trainer, lp, old, ref, adv, mask):
    """TRL's _compute_loss on crafted per-token log-probs; returns (loss, grad wrt lp, logged metrics)."""
    lp = lp.clone().requires_grad_(True)
    trainer._get_per_token_logps_and_entropies = lambda *a, **k: (lp, torch.zeros_like(lp), None)
    inputs = {
        "prompt_ids": torch.ones(B, 2, dtype=torch.long),
        "prompt_mask": torch.ones(B, 2, dtype=torch.long),
        "completion_ids": torch.ones(B, T, dtype=torch.long),
        "completion_mask": mask,
        "advantages": adv,
        "num_items_in_batch": mask.sum(),
    }
    if old is not None:
        inputs["old_per_token_logps"] = old
    if ref is not None:
        inputs["ref_per_token_logps"] = ref
    for v in trainer._metrics["train"].values():
        v.clear()
    loss = trainer._compute_loss(trainer.model, inputs)
    (grad,) = torch.autograd.grad(loss, lp)
    metrics = {k: v[-1] for k, v in trainer._metrics["train"].items() if v}
    return loss.detach(), grad, metrics


def _ours(lp, old, ref, adv, mask, **kw):
    lp = lp.clone().requires_grad_(True)
    terms = grpo_loss_terms(lp, old, adv, mask, ref_logps=ref, **kw)
    (grad,) = torch.autograd.grad(terms.loss, lp)
    return terms.loss.detach(), grad, terms.metrics()


def _compare(trainer, loss_type, seed, *, beta, level, epsilon=0.2, epsilon_high=None, on_policy=False):
    lp, old, ref, adv = _batch(seed)
    mask = _mask()
    if on_policy:
        old = None
    ref_in = ref if beta else None
    want, want_grad, want_m = _trl_loss(trainer, lp, old, ref_in, adv, mask)
    got, got_grad, got_m = _ours(
        lp,
        old,
        ref_in,
        adv,
        mask,
        beta=beta,
        epsilon=epsilon,
        epsilon_high=epsilon_high,
        loss_type=loss_type,
        max_completion_length=L_MAX,
        importance_sampling_level=level,
    )
    assert want.dtype == torch.float64
    diff = abs(got.item() - want.item())
    assert diff < TOL, f"{loss_type}: ours {got.item():.12f} vs TRL {want.item():.12f}"
    torch.testing.assert_close(got_grad, want_grad, atol=TOL, rtol=0)
    for k in ("clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean", "kl"):
        if k in want_m:
            assert abs(got_m[k] - want_m[k]) < TOL, f"metric {k}: ours {got_m[k]} vs TRL {want_m[k]}"
    assert ("kl" in got_m) == ("kl" in want_m)
    want_m["abs_diff"] = diff
    return want_m


@pytest.mark.parametrize("level", ["token", "sequence"])
@pytest.mark.parametrize("beta", [0.0, 0.04])
@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_loss_grad_and_metrics_equal_trl(make_trainer, loss_type, beta, level):
    trainer = make_trainer(loss_type=loss_type, beta=beta, level=level, epsilon_high=0.28)
    clipped_any = 0.0
    for seed in range(3):
        m = _compare(trainer, loss_type, seed, beta=beta, level=level, epsilon_high=0.28)
        clipped_any += m["clip_ratio/region_mean"]
    # The crafted batches must actually exercise the clip (otherwise "equal with clipping" would be vacuous).
    assert clipped_any > 0


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_symmetric_clip_and_on_policy_equal_trl(make_trainer, loss_type):
    trainer = make_trainer(loss_type=loss_type, beta=0.1, epsilon=0.1)
    _compare(trainer, loss_type, 7, beta=0.1, level="token", epsilon=0.1)
    # On-policy (TRL's old_per_token_logps=None path): ratio 1 in value, the policy gradient remains.
    _compare(trainer, loss_type, 8, beta=0.1, level="token", epsilon=0.1, on_policy=True)


def test_gspo_small_epsilons_equal_trl(make_trainer):
    trainer = make_trainer(loss_type="grpo", level="sequence", epsilon=3e-4, epsilon_high=4e-4)
    for seed in range(3):
        _compare(trainer, "grpo", 20 + seed, beta=0.0, level="sequence", epsilon=3e-4, epsilon_high=4e-4)


def test_grpo_loss_is_the_scalar_of_the_terms(make_trainer):
    lp, old, ref, adv = _batch(11)
    mask = _mask()
    trainer = make_trainer(loss_type="dapo", beta=0.04)
    want, _, _ = _trl_loss(trainer, lp, old, ref, adv, mask)
    got = grpo_loss(lp, old, adv, mask, ref_logps=ref, beta=0.04)  # dapo is the default, as in TRL 1.16
    assert abs(got.item() - want.item()) < TOL


# --------------------------------------------------------------------------------------------------
# Advantages through TRL's own scoring path
# --------------------------------------------------------------------------------------------------


def _trl_advantages(trainer, rewards: torch.Tensor) -> torch.Tensor:
    """Run TRL's _generate_and_score_completions on the prompts, with the reward computation replaced."""
    n = rewards.numel()
    trainer._calculate_rewards = lambda inputs, prompts, completions, ids: rewards.float().view(n, 1).clone()
    prompts = [{"prompt": p} for p in ["1+2=", "3+4=", "5+6=", "7+8="] for _ in range(trainer.num_generations)][:n]
    torch.manual_seed(0)
    with torch.no_grad():
        out = trainer._generate_and_score_completions(prompts)
    return out["advantages"].double()


@pytest.mark.parametrize("scale_rewards", ["group", "batch", "none"])
def test_group_advantages_equal_trl(make_trainer, scale_rewards):
    trainer = make_trainer(scale_rewards=scale_rewards, max_completion_length=3)
    g = torch.Generator().manual_seed(3)
    rewards = torch.cat(
        [
            torch.tensor([0.0, 0.0, 0.0, 1.0]),  # the documented case
            torch.tensor([1.0, 1.0, 1.0, 1.0]),  # zero variance: advantages 0
        ]
    )
    for r in (rewards, torch.rand(B, generator=g) * 3):
        want = _trl_advantages(trainer, r)
        # TRL computes in float32; compare at float32 resolution.
        got = group_advantages(r.float(), G, scale_rewards).double()
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-6)
    # NaN (a reward function returned None for every function) -> advantage 0, excluded from the baseline.
    r = torch.tensor([0.0, float("nan"), 1.0, 1.0, 2.0, 0.0, 1.0, 1.0])
    torch.testing.assert_close(
        group_advantages(r, G, scale_rewards).double(), _trl_advantages(trainer, r), atol=1e-6, rtol=1e-6
    )


def test_report_max_differences(make_trainer):
    """The largest |ours - TRL| per loss type, printed (see with ``pytest -s``) and bounded. It computes its own
    batches, so what it reports does not depend on which other tests ran in the same worker."""
    worst = {}
    for lt in LOSS_TYPES:
        trainer = make_trainer(loss_type=lt, beta=0.04, level="token", epsilon_high=0.28)
        worst[lt] = max(
            _compare(trainer, lt, seed, beta=0.04, level="token", epsilon_high=0.28)["abs_diff"] for seed in range(3)
        )
    print("\nmax |grpo_lab - TRL| per loss type:", {k: f"{v:.2e}" for k, v in sorted(worst.items())})
    assert set(worst) == set(LOSS_TYPES) and all(v < TOL for v in worst.values())


def test_trl_equivalence_helper_used_by_notebook_03():
    from grpo_lab.trl_equivalence import trl_loss

    lp, old, ref, adv = _batch(30)
    mask = _mask()
    for lt in LOSS_TYPES:
        kw = dict(ref_logps=ref, beta=0.04, epsilon_high=0.28, loss_type=lt, max_completion_length=L_MAX)
        assert abs(trl_loss(lp, old, adv, mask, **kw).item() - grpo_loss(lp, old, adv, mask, **kw).item()) < TOL


def test_trl_notices_are_kept_once_and_not_printed(capfd):
    # TRL logs, once per trainer, that sequence-level ratios with dapo weight sequences by length (not GSPO's
    # objective); trl_loss keeps the notice for the notebook to show once instead of printing "[RANK 0]" lines.
    from grpo_lab.trl_equivalence import trl_loss, trl_notices

    B, T = 4, 5
    mask = torch.ones(B, T, dtype=torch.long)
    logps = -torch.rand(B, T, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    capfd.readouterr()
    for beta in (0.0, 0.04):
        trl_loss(logps, logps, torch.ones(B, dtype=torch.float64), mask, ref_logps=logps, beta=beta,
                 loss_type="dapo", importance_sampling_level="sequence")  # fmt: skip
    out = capfd.readouterr()
    assert "[RANK" not in out.out + out.err
    dapo = [n for n in trl_notices() if "'dapo'" in n and "sequence" in n]
    assert len(dapo) == 1 and not dapo[0].startswith("[RANK")
