"""Notebook 04, the update that a rollout feeds, graded against the library on copies of a tiny model.

``04-training-step``: one GRPO training step, given a rollout and its advantages.
The student writes ``fn(model, optimizer, rollout, advantages, *, temperature=1.0, epsilon=0.2,
epsilon_high=None, loss_type="dapo", max_completion_length=None, max_grad_norm=1.0) -> float`` that

1. computes the per-token log-probs of the rollout's completions under ``model`` with gradients
   (``grpo_lab.rollout.completion_logps`` at the sampling temperature);
2. uses their detached copy as the "old" log-probs (on-policy, one update per batch, as TRL does);
3. computes ``grpo_lab.grpo.grpo_loss`` with the rollout's completion mask (beta = 0, no reference);
4. zeroes the gradients, backpropagates, clips the gradient norm to ``max_grad_norm``, steps the optimizer;
5. returns the loss as a Python float.

Checks compare the loss and the updated parameters with a reference step on a copy of the same model.

``04-off-policy``: several updates on one rollout (TRL's ``num_iterations``), where the clip finally acts.
The student writes ``fn(model, optimizer, rollout, advantages, *, num_iterations=2, temperature=1.0,
epsilon=0.2, epsilon_high=None, loss_type="dapo", max_completion_length=None, max_grad_norm=1.0) -> list[dict]``:
for each of the ``num_iterations`` updates,

1. the per-token log-probs under the current model, with gradients (``completion_logps`` at ``temperature``);
2. the "old" log-probs are the sampler's, ``rollout.logps``, the same for every iteration: from the second
   update on the model has moved, so the ratio leaves 1 and the clip can act;
3. ``grpo_loss`` with the rollout's completion mask;
4. ``clip_ratio``: the share of real tokens where the clip is active, ``(r < 1 - epsilon and A < 0) or
   (r > 1 + epsilon_high and A > 0)``, computed from the ratio of this iteration (before its update);
5. zero the gradients, backpropagate, clip the gradient norm, step;

and returns one record ``{"loss": float, "clip_ratio": float}`` per iteration. The checks compare with a
reference on a copy of a tiny model, require a non-zero clip fraction in the second iteration, and read the
gradient that reaches each token's logits: a clipped token must get exactly zero.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import torch

from grpo_lab.course.registry import exercise_test

# --------------------------------------------------------------------------------------------------
# 04-training-step
# --------------------------------------------------------------------------------------------------


STEP = "04-training-step"


def _step_setup(seed=0, lr=1e-2):
    from grpo_lab.grpo import group_advantages
    from grpo_lab.models import build_tiny_model
    from grpo_lab.rollout import sample_groups

    model, tok = build_tiny_model("nano", seed=seed)
    g = torch.Generator().manual_seed(seed)
    r = sample_groups(
        model, tok, ["12+35=", "7+8=", "99+1="], 4, max_completion_length=6, temperature=0.9, generator=g
    )
    rewards = torch.tensor([float(len(t) % 3 == 0) + 0.1 * len(t) for t in r.texts])  # varied, length-dependent
    adv = group_advantages(rewards, 4)
    return model, r, adv, lr


def _step_reference(model, rollout, adv, lr, **kw):
    from grpo_lab.grpo import grpo_loss
    from grpo_lab.rollout import completion_logps

    m = copy.deepcopy(model)
    opt = torch.optim.AdamW(m.parameters(), lr=lr)
    temp = kw.get("temperature", 1.0)
    mask = rollout.completion_mask.float()
    m.train()
    lp = completion_logps(m, rollout.prompt_ids, rollout.prompt_mask, rollout.completion_ids, mask, temp)
    loss = grpo_loss(
        lp,
        lp.detach(),
        adv,
        mask,
        epsilon=kw.get("epsilon", 0.2),
        epsilon_high=kw.get("epsilon_high"),
        loss_type=kw.get("loss_type", "dapo"),
        max_completion_length=kw.get("max_completion_length"),
    )
    opt.zero_grad()
    loss.backward()
    gn = torch.nn.utils.clip_grad_norm_(m.parameters(), kw.get("max_grad_norm", 1.0))
    opt.step()
    return m, loss.item(), float(gn)


def _step_student(fn, model, rollout, adv, lr, **kw):
    m = copy.deepcopy(model)
    opt = torch.optim.AdamW(m.parameters(), lr=lr)
    out = fn(m, opt, rollout, adv.clone(), **kw)
    assert isinstance(out, float), f"return the loss as a Python float (loss.item()), got {type(out).__name__}"
    return m, out


def _same_params(a, b, what, atol=1e-6):
    for (name, p), q in zip(a.named_parameters(), b.parameters()):
        if not torch.allclose(p, q, atol=atol, rtol=1e-5):
            raise AssertionError(
                f"{what}: parameter {name} differs from the reference step (max diff {(p - q).abs().max().item():.2e})"
            )


@exercise_test(
    STEP,
    title="One GRPO training step",
    forbid=("grpo_lab.trainer.GRPOTrainer",),
    hint="completion_logps -> grpo_loss(lp, lp.detach(), ...) -> "
    "zero_grad, backward, clip_grad_norm_, step; return loss.item().",
    time_limit_s=40,
)
def test_loss_and_update_match_reference(fn):
    model, r, adv, lr = _step_setup(0)
    want_m, want_loss, _ = _step_reference(model, r, adv, lr)
    got_m, got_loss = _step_student(fn, model, r, adv, lr)
    assert abs(got_loss - want_loss) < 1e-6, f"loss: expected {want_loss:.6f}, got {got_loss:.6f}"
    _same_params(got_m, want_m, "default knobs")


@exercise_test(
    STEP,
    hint="Pass temperature to completion_logps: the log-probs must be those of the tempered "
    "distribution the completions were sampled from.",
    time_limit_s=40,
)
def test_temperature_and_loss_type_are_used(fn):
    model, r, adv, lr = _step_setup(1)
    kw = dict(temperature=0.7, loss_type="dr_grpo", max_completion_length=8, epsilon_high=0.28)
    want_m, want_loss, _ = _step_reference(model, r, adv, lr, **kw)
    got_m, got_loss = _step_student(fn, model, r, adv, lr, **kw)
    assert abs(got_loss - want_loss) < 1e-6, f"loss with {kw}: expected {want_loss:.6f}, got {got_loss:.6f}"
    _same_params(got_m, want_m, f"{kw}")


@exercise_test(
    STEP,
    hint="torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm) between backward and step.",
    time_limit_s=40,
)
def test_gradient_is_clipped(fn):
    model, r, adv, _ = _step_setup(2)
    lr = 1e-3
    want_m, _, gn = _step_reference(model, r, adv, lr, max_grad_norm=1e-3, loss_type="grpo")
    assert gn > 1e-3  # the clip is active in this test
    got_m, _ = _step_student(fn, model, r, adv, lr, max_grad_norm=1e-3, loss_type="grpo")
    # with Adam the first step barely depends on the gradient scale, so compare with SGD as well
    m1, m2 = copy.deepcopy(model), copy.deepcopy(model)
    fn(m1, torch.optim.SGD(m1.parameters(), lr=1.0), r, adv.clone(), max_grad_norm=1e-3, loss_type="grpo")
    fn(m2, torch.optim.SGD(m2.parameters(), lr=1.0), r, adv.clone(), max_grad_norm=1e-6, loss_type="grpo")
    step1 = torch.sqrt(sum(((p - q) ** 2).sum() for p, q in zip(m1.parameters(), model.parameters())))
    step2 = torch.sqrt(sum(((p - q) ** 2).sum() for p, q in zip(m2.parameters(), model.parameters())))
    assert abs(step1.item() - 1e-3) < 1e-5 and abs(step2.item() - 1e-6) < 1e-8, (
        f"with SGD(lr=1) the update norm must equal max_grad_norm: got {step1.item():.2e} and {step2.item():.2e}"
    )
    _same_params(got_m, want_m, "max_grad_norm=1e-3")


@exercise_test(
    STEP,
    hint="All-equal advantages (a zero-variance group) give loss 0 and no update with loss_type='grpo'.",
    time_limit_s=40,
)
def test_zero_advantages_do_not_move_the_model(fn):
    model, r, adv, _ = _step_setup(3)
    m = copy.deepcopy(model)
    loss = fn(m, torch.optim.SGD(m.parameters(), lr=1.0), r, torch.zeros_like(adv), loss_type="grpo")
    assert abs(loss) < 1e-9, f"zero advantages: loss must be 0, got {loss}"
    _same_params(m, model, "zero advantages", atol=0)


# --------------------------------------------------------------------------------------------------
# 04-off-policy
# --------------------------------------------------------------------------------------------------


OFF_POLICY = "04-off-policy"
LR = 3e-2  # large on purpose: one Adam step moves a tiny model's ratios past the clip


def _off_policy_setup(seed=0):
    from grpo_lab.grpo import group_advantages
    from grpo_lab.models import build_tiny_model
    from grpo_lab.rollout import sample_groups

    model, tok = build_tiny_model("nano", seed=seed)
    r = sample_groups(
        model,
        tok,
        ["12+35=", "7+8=", "99+1="],
        4,
        max_completion_length=6,
        temperature=1.0,
        generator=torch.Generator().manual_seed(seed),
    )
    rewards = torch.tensor([float(len(t) % 2) + 0.1 * len(t) for t in r.texts])
    return model, r, group_advantages(rewards, 4)


def _off_policy_reference(model, rollout, adv, num_iterations=2, **kw):
    from grpo_lab.grpo import grpo_loss_terms
    from grpo_lab.rollout import completion_logps

    m = copy.deepcopy(model)
    opt = torch.optim.AdamW(m.parameters(), lr=LR)
    mask = rollout.completion_mask.float()
    records = []
    for _ in range(num_iterations):
        lp = completion_logps(
            m, rollout.prompt_ids, rollout.prompt_mask, rollout.completion_ids, mask, kw.get("temperature", 1.0)
        )
        t = grpo_loss_terms(
            lp,
            rollout.logps,
            adv,
            mask,
            epsilon=kw.get("epsilon", 0.2),
            epsilon_high=kw.get("epsilon_high"),
            loss_type=kw.get("loss_type", "dapo"),
            max_completion_length=kw.get("max_completion_length"),
        )
        opt.zero_grad()
        t.loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), kw.get("max_grad_norm", 1.0))
        opt.step()
        records.append({"loss": t.loss.item(), "clip_ratio": t.metrics()["clip_ratio/region_mean"]})
    return m, records


def _off_policy_student(fn, model, rollout, adv, **kw):
    m = copy.deepcopy(model)
    out = fn(m, torch.optim.AdamW(m.parameters(), lr=LR), rollout, adv.clone(), **kw)
    n = kw.get("num_iterations", 2)
    assert isinstance(out, (list, tuple)) and len(out) == n, f"return one record per iteration ({n}), got {out!r}"
    for rec in out:
        assert isinstance(rec, dict) and {"loss", "clip_ratio"} <= set(rec), (
            f"each record is {{'loss': ..., 'clip_ratio': ...}}, got {rec!r}"
        )
    return m, list(out)


@exercise_test(
    OFF_POLICY,
    title="Two updates on one batch: the clip acts",
    forbid=("grpo_lab.trainer.GRPOTrainer", "grpo_lab.grpo.grpo_loss_terms"),
    hint="old_logps = rollout.logps for every iteration (not the detached current log-probs).",
    time_limit_s=60,
)
def test_matches_reference_and_clips(fn):
    model, r, adv = _off_policy_setup(0)
    want_m, want = _off_policy_reference(model, r, adv)
    assert want[0]["clip_ratio"] < 1e-9 < want[1]["clip_ratio"]  # the scenario: on-policy first, clipped second
    got_m, got = _off_policy_student(fn, model, r, adv, num_iterations=2)
    for k, (g, w) in enumerate(zip(got, want), 1):
        assert abs(float(g["loss"]) - w["loss"]) < 1e-5, (
            f"iteration {k}: loss expected {w['loss']:.6f}, got {float(g['loss']):.6f}"
        )
    assert float(got[1]["clip_ratio"]) > 0, (
        "iteration 2: the ratio has moved past the clip edges for some tokens, but clip_ratio is 0"
    )
    for (name, p), q in zip(got_m.named_parameters(), want_m.parameters()):
        assert torch.allclose(p, q, atol=1e-5, rtol=1e-4), (
            f"after 2 iterations parameter {name} differs from the reference"
        )


@exercise_test(
    OFF_POLICY,
    hint="Clip active: (r < 1 - epsilon and A < 0) or (r > 1 + epsilon_high and A > 0), averaged over mask == 1.",
    time_limit_s=60,
)
def test_clip_ratio_values(fn):
    model, r, adv = _off_policy_setup(1)
    kw = dict(num_iterations=3, epsilon=0.1, epsilon_high=0.3, loss_type="grpo")
    _, want = _off_policy_reference(model, r, adv, **kw)
    _, got = _off_policy_student(fn, model, r, adv, **kw)
    for k, (g, w) in enumerate(zip(got, want), 1):
        assert abs(float(g["clip_ratio"]) - w["clip_ratio"]) < 1e-6, (
            f"iteration {k} with epsilon 0.1 / epsilon_high 0.3: clip_ratio expected {w['clip_ratio']:.4f}, got {float(g['clip_ratio']):.4f}"
        )


class _Recorder(torch.nn.Module):
    """Wraps a model and keeps the logits of its last forward with gradients, so their gradient can be read."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.logits = None

    def forward(self, **kwargs):
        out = self.inner(**kwargs)
        if out.logits.requires_grad:
            out.logits.retain_grad()
            self.logits = out.logits
        return SimpleNamespace(logits=out.logits)


@exercise_test(
    OFF_POLICY,
    hint="The clipped branch is a constant: a token past the clip edge must contribute no gradient. "
    "Use grpo_loss (or -min(r A, clip(r) A)), not r * A.",
    time_limit_s=60,
)
def test_clipped_tokens_get_zero_gradient(fn):
    model, r, adv = _off_policy_setup(0)
    rec = _Recorder(copy.deepcopy(model))
    fn(rec, torch.optim.AdamW(rec.parameters(), lr=LR), r, adv.clone(), num_iterations=2)
    assert rec.logits is not None and rec.logits.grad is not None, "no forward pass with gradients reached the model"
    T = r.completion_ids.shape[1]
    pos_logits = rec.logits.detach()[:, -T - 1 : -1].float()  # positions that predict the completion tokens
    lp = torch.log_softmax(pos_logits, -1).gather(2, r.completion_ids[..., None]).squeeze(2)
    ratio = torch.exp(lp - r.logps)
    A = adv[:, None]
    real = r.completion_mask.bool()
    clipped = real & (((ratio < 0.8) & (A < 0)) | ((ratio > 1.2) & (A > 0)))
    free = real & ~clipped & (A != 0)
    grad = rec.logits.grad[:, -T - 1 : -1].abs().amax(-1)  # [B, T]: the largest gradient on each token's logits
    assert clipped.any() and free.any()
    assert grad[clipped].max().item() == 0, (
        f"{int((grad[clipped] > 0).sum())} of {int(clipped.sum())} clipped tokens still received a gradient in iteration 2"
    )
    assert grad[free].max().item() > 0, "no gradient reached the unclipped tokens"
