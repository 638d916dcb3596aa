"""Notebook 04: one GRPO training step, given a rollout and its advantages, graded against the library.

The student writes ``fn(model, optimizer, rollout, advantages, *, temperature=1.0, epsilon=0.2,
epsilon_high=None, loss_type="dapo", max_completion_length=None, max_grad_norm=1.0) -> float`` that

1. computes the per-token log-probs of the rollout's completions under ``model`` with gradients
   (``grpo_lab.rollout.completion_logps`` at the sampling temperature);
2. uses their detached copy as the "old" log-probs (on-policy, one update per batch, as TRL does);
3. computes ``grpo_lab.grpo.grpo_loss`` with the rollout's completion mask (beta = 0, no reference);
4. zeroes the gradients, backpropagates, clips the gradient norm to ``max_grad_norm``, steps the optimizer;
5. returns the loss as a Python float.

Checks compare the loss and the updated parameters with a reference step on a copy of the same model.
"""

from __future__ import annotations

import copy

import torch

from grpo_lab.grading import exercise_test

ID = "04-training-step"


def _setup(seed=0, lr=1e-2):
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


def _reference(model, rollout, adv, lr, **kw):
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


def _student(fn, model, rollout, adv, lr, **kw):
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
    ID,
    title="One GRPO training step",
    forbid=("grpo_lab.trainer.GRPOTrainer",),
    hint="completion_logps -> grpo_loss(lp, lp.detach(), ...) -> "
    "zero_grad, backward, clip_grad_norm_, step; return loss.item().",
    time_limit_s=40,
)
def test_loss_and_update_match_reference(fn):
    model, r, adv, lr = _setup(0)
    want_m, want_loss, _ = _reference(model, r, adv, lr)
    got_m, got_loss = _student(fn, model, r, adv, lr)
    assert abs(got_loss - want_loss) < 1e-6, f"loss: expected {want_loss:.6f}, got {got_loss:.6f}"
    _same_params(got_m, want_m, "default knobs")


@exercise_test(
    ID,
    hint="Pass temperature to completion_logps: the log-probs must be those of the tempered "
    "distribution the completions were sampled from.",
    time_limit_s=40,
)
def test_temperature_and_loss_type_are_used(fn):
    model, r, adv, lr = _setup(1)
    kw = dict(temperature=0.7, loss_type="dr_grpo", max_completion_length=8, epsilon_high=0.28)
    want_m, want_loss, _ = _reference(model, r, adv, lr, **kw)
    got_m, got_loss = _student(fn, model, r, adv, lr, **kw)
    assert abs(got_loss - want_loss) < 1e-6, f"loss with {kw}: expected {want_loss:.6f}, got {got_loss:.6f}"
    _same_params(got_m, want_m, f"{kw}")


@exercise_test(
    ID,
    hint="torch.nn.utils.clip_grad_norm_(model.parameters(), max_grad_norm) between backward and step.",
    time_limit_s=40,
)
def test_gradient_is_clipped(fn):
    model, r, adv, _ = _setup(2)
    lr = 1e-3
    want_m, _, gn = _reference(model, r, adv, lr, max_grad_norm=1e-3, loss_type="grpo")
    assert gn > 1e-3  # the clip is active in this test
    got_m, _ = _student(fn, model, r, adv, lr, max_grad_norm=1e-3, loss_type="grpo")
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
    ID,
    hint="All-equal advantages (a zero-variance group) give loss 0 and no update with loss_type='grpo'.",
    time_limit_s=40,
)
def test_zero_advantages_do_not_move_the_model(fn):
    model, r, adv, _ = _setup(3)
    m = copy.deepcopy(model)
    loss = fn(m, torch.optim.SGD(m.parameters(), lr=1.0), r, torch.zeros_like(adv), loss_type="grpo")
    assert abs(loss) < 1e-9, f"zero advantages: loss must be 0, got {loss}"
    _same_params(m, model, "zero advantages", atol=0)
