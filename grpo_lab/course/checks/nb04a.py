"""Notebook 04a: generalized advantage estimation, graded against expected values stored here.

The student writes ``fn(rewards: Tensor[B, T], values: Tensor[B, T], completion_mask: Tensor[B, T], gamma: float,
lam: float) -> (advantages, returns)``, both [B, T] (Schulman et al., arXiv 1506.02438). The expected numbers
were worked out by hand (the first three) or once from the formula and rounded to 1e-6; no reference
implementation is called, so the check grades the math alone.
"""

import torch

from grpo_lab.course.registry import exercise_test

ID = "04a-gae"
D = torch.float64

# One completion of three real tokens and a pad; the pad's value (9.0) must not leak into the result.
R1 = [[0.0, 0.0, 1.0, 0.0]]
V1 = [[0.5, 0.2, 0.4, 9.0]]
M1 = [[1.0, 1.0, 1.0, 0.0]]


def _t(x):
    return torch.tensor(x, dtype=D)


def _pair(out, what):
    assert isinstance(out, tuple) and len(out) == 2, (
        f"{what}: return a tuple (advantages, returns), got {type(out).__name__}"
    )
    return out


def _close(got, want, what, tol=1e-5):
    got, want = torch.as_tensor(got).to(D), _t(want)
    assert got.shape == want.shape, f"{what}: expected shape {tuple(want.shape)}, got {tuple(got.shape)}"
    assert torch.isfinite(got).all(), f"{what}: got non-finite values {got.tolist()}"
    err = (got - want).abs().max().item()
    assert err < tol, (
        f"{what}: expected {[[round(x, 4) for x in r] for r in want.tolist()]}, "
        f"got {[[round(x, 4) for x in r] for r in got.tolist()]}"
    )


@exercise_test(
    ID,
    title="Generalized advantage estimation",
    forbid=("grpo_lab.ppo.gae",),
    hint="With gamma = lam = 1, A_t is the sum of the rewards from t to the end, minus V_t.",
)
def test_lambda_one_is_reward_to_go_minus_value(fn):
    adv, ret = _pair(fn(_t(R1), _t(V1), _t(M1), 1.0, 1.0), "gamma=1, lam=1")
    _close(adv, [[0.5, 0.8, 0.6, 0.0]], "advantages, gamma=1, lam=1")
    _close(ret, [[1.0, 1.0, 1.0, 0.0]], "returns (A + V), gamma=1, lam=1")


@exercise_test(
    ID,
    hint="With lam = 0, A_t is the one-step TD residual r_t + gamma * V_{t+1} - V_t; "
    "after the last real token the next value is 0.",
)
def test_lambda_zero_is_the_td_residual(fn):
    adv, ret = _pair(fn(_t(R1), _t(V1), _t(M1), 1.0, 0.0), "gamma=1, lam=0")
    _close(adv, [[-0.3, 0.2, 0.6, 0.0]], "advantages, gamma=1, lam=0")
    _close(ret, [[0.2, 0.4, 1.0, 0.0]], "returns, gamma=1, lam=0")


@exercise_test(
    ID,
    hint="Scan backwards: A_t = delta_t + gamma * lam * A_{t+1}. Discount the next VALUE by gamma "
    "inside delta, and the next ADVANTAGE by gamma * lam.",
)
def test_discount_and_lambda_mix(fn):
    adv, _ = _pair(fn(_t(R1), _t(V1), _t(M1), 0.9, 0.5), "gamma=0.9, lam=0.5")
    # delta = (0.9*0.2 - 0.5, 0.9*0.4 - 0.2, 1 - 0.4) = (-0.32, 0.16, 0.6); A_1 = 0.16 + 0.45*0.6 = 0.43
    _close(adv, [[-0.32 + 0.45 * 0.43, 0.43, 0.6, 0.0]], "advantages, gamma=0.9, lam=0.5")


@exercise_test(
    ID,
    hint="Rows end at different places: the value after a row's last real token is 0, and "
    "padded positions get advantage 0 and return 0 (multiply by the mask).",
)
def test_rows_of_different_lengths(fn):
    r = [[0.0, 0.0, 0.0, 1.0], [0.0, -0.1, 0.9, 0.0]]
    v = [[0.3, 0.4, 0.6, 0.8], [0.1, 0.2, 0.5, 7.0]]
    m = [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]]
    adv, ret = _pair(fn(_t(r), _t(v), _t(m), 1.0, 0.95), "two rows")
    _close(adv, [[0.641975, 0.5705, 0.39, 0.2], [0.651, 0.58, 0.4, 0.0]], "advantages, two rows, lam=0.95")
    _close(ret, [[0.941975, 0.9705, 0.99, 1.0], [0.751, 0.78, 0.9, 0.0]], "returns, two rows, lam=0.95")


@exercise_test(ID, hint="Do not change the caller's tensors in place: work on copies (or build new tensors).")
def test_inputs_are_left_unchanged(fn):
    r, v, m = _t(R1), _t(V1), _t(M1)
    fn(r, v, m, 1.0, 0.95)
    assert torch.equal(r, _t(R1)) and torch.equal(v, _t(V1)) and torch.equal(m, _t(M1)), "the inputs were modified"


@exercise_test(ID, hint="A batch of three rows with gamma=0.99, lam=0.9: the same rules as above, all at once.")
def test_stored_batch(fn):
    r = [[0.8, 0.17, 0.09, -0.61, 0.05], [-1.37, 0.34, 1.01, -1.44, 0.98], [0.52, 1.24, -0.86, 0.3, 0.42]]
    v = [[0.11, 0.53, 0.95, 0.13, 0.66], [0.55, 0.05, 0.27, 0.44, 0.08], [0.43, 0.57, 0.57, 0.71, 0.84]]
    m = [[1.0] * 5, [1.0, 1.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0, 0.0]]
    adv, ret = _pair(fn(_t(r), _t(v), _t(m), 0.99, 0.9), "three rows")
    _close(
        adv,
        [
            [0.705653, -0.571321, -1.292728, -0.63011, -0.61],
            [-1.61211, 0.29, 0.0, 0.0, 0.0],
            [0.886818, 0.260963, -1.09241, -0.41, 0.0],
        ],
        "advantages, three rows",
    )
    _close(
        ret,
        [
            [0.815653, -0.041321, -0.342728, -0.50011, 0.05],
            [-1.06211, 0.34, 0.0, 0.0, 0.0],
            [1.316818, 0.830963, -0.52241, 0.3, 0.0],
        ],
        "returns, three rows",
    )
