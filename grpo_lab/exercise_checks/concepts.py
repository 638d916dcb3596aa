"""Concept questions at the end of notebooks 01-05, 08 and 09: a few sharp ones each, multiple choice or numeric
(``concepts_more`` holds those of 00, 04a, 06, 07 and 10).

Graded by ``check("<nn>-concepts", {"q1": "b", ...})``; a wrong answer prints its explanation. The solution
notebooks show the same text (``grading.questions_markdown``), so this module is the single source.
"""

import math

from grpo_lab.grading import Question, concept_questions

concept_questions(
    "01-concepts",
    [
        Question(
            "q1",
            "A small model is right in 2% of its samples. With groups of $G = 8$ and a 0/1 correctness reward, "
            "what share of groups carries a learning signal (reward std > 0)? Give a number between 0 and 1.",
            answer=1 - 0.98**8 - 0.02**8,
            tolerance=0.005,
            why="A group teaches nothing when all its rewards are equal: probability p^G + (1-p)^G = 0.02^8 + 0.98^8, "
            "about 0.851. The rest, about 0.149, has signal: a strict grader on a weak model starves GRPO.",
        ),
        Question(
            "q2",
            "A completion cut at `max_completion_length` has no final answer and gets reward 0, like a wrong one. "
            "What is DAPO's *overlong filtering*?",
            options={
                "a": "a penalty that ramps from 0 to -1 over the last tokens before the length limit",
                "b": "masking the loss of truncated completions, so they contribute no gradient",
                "c": "raising `max_completion_length` until nothing is truncated",
                "d": "giving truncated completions their group's mean reward",
            },
            answer="b",
            why="Overlong filtering removes truncated samples from the loss (TRL: `mask_truncated_completions=True`); "
            "the ramp in (a) is DAPO's separate soft overlong punishment, a length-shaping reward.",
        ),
        Question(
            "q3",
            "A verifier pays 1 when the last number of the completion equals the gold answer 72. Which completion "
            "earns 1 without solving anything?",
            options={
                "a": "`#### 0`",
                "b": "`The answer is 70 or 71 or 72`",
                "c": "`I don't know.`",
                "d": "`72 or 73`",
            },
            answer="b",
            why="A last-number rule cannot tell a list of candidates from an answer, so the policy learns to enumerate; "
            "`answers_match` refuses hedges ('or', 'between', '±') for this reason. (d) ends with 73.",
        ),
        Question(
            "q4",
            "Why is 'exit status 0 of `code + tests` in a subprocess' not a safe code reward?",
            options={
                "a": "exit statuses differ between operating systems",
                "b": "the code can call `sys.exit(0)` (or `os._exit(0)`) before any test runs",
                "c": "passing asserts exit with status 1",
                "d": "subprocesses cannot import the tests",
            },
            answer="b",
            why="The program ends with status 0 before the first assert, so every test 'passes'. `run_tests` pays only "
            "when a nonce written after the last assert, unknown to the code, comes back.",
        ),
    ],
)

concept_questions(
    "02-concepts",
    [
        Question(
            "q1",
            'Group rewards $(1, 1, 1, 0)$, `scale_rewards="group"`: what is the advantage of the wrong completion? '
            "(two decimals)",
            answer=-0.75 / (0.5 + 1e-4),
            tolerance=0.01,
            why="Mean 0.75; deviations (0.25, 0.25, 0.25, -0.75); Bessel std sqrt(0.75/3) = 0.5; so -0.75 / 0.5001 = -1.50.",
        ),
        Question(
            "q2",
            "What does a group whose rewards are all equal contribute to the policy gradient?",
            options={
                "a": "a push toward its most likely completion",
                "b": "nothing: every advantage is 0, so every token's loss term and gradient are 0",
                "c": "a push down on all of its completions",
                "d": "NaN, which the trainer skips",
            },
            answer="b",
            why="R_i - mean = 0 for all i, and the 1e-4 in the denominator keeps it 0 instead of 0/0. (With the token-mean "
            "losses its tokens still count in the denominator, diluting the other groups' push.)",
        ),
        Question(
            "q3",
            "A prompt's baseline is the mean of its $G$ sampled rewards. Going from $G = 8$ to $G = 16$ multiplies the "
            "variance of that baseline by:",
            options={"a": "2", "b": "1 (no change)", "c": "1/2", "d": "1/4"},
            answer="c",
            why="The variance of a mean of G independent samples is sigma^2 / G: twice the samples, half the variance, so "
            "the advantages R_i - mean are less noisy (at twice the generation cost).",
        ),
        Question(
            "q4",
            "After one GRPO update on a group of 4 sampled completions, can the probability of a completion that was "
            "never sampled change?",
            options={
                "a": "no: the advantages sum to zero in the group, so probability only moves among the 4",
                "b": "yes: the update changes weights shared by every sequence, and each softmax renormalizes over "
                "the whole vocabulary",
                "c": "only when beta > 0",
                "d": 'only with `loss_type="dr_grpo"`',
            },
            answer="b",
            why="Advantages summing to zero says nothing about where mass goes: pushing a sampled token up pushes every "
            "other token at that position down, and the shared weights move the probabilities of unseen sequences too.",
        ),
    ],
)

concept_questions(
    "03-concepts",
    [
        Question(
            "q1",
            'Why is the loss exactly 0 at the first update on a batch with `loss_type="grpo"` and `beta=0`?',
            options={
                "a": "because the gradient is 0 there",
                "b": "the ratio is 1 in value, so each token's loss is $-A_i$, and each group's advantages sum to zero",
                "c": "the clip zeroes every token",
                "d": "the model is in eval mode",
            },
            answer="b",
            why="grpo averages per sequence, then over sequences: -mean_i(A_i) = 0. The gradient is not 0 "
            "(-A_i grad log pi per token): the loss value is not a progress signal.",
        ),
        Question(
            "q2",
            'On-policy, `loss_type="dapo"`, `beta=0`: a group\'s two completions have $A = +1$ (2 tokens) and '
            "$A = -1$ (6 tokens). What is the loss?",
            answer=0.5,
            tolerance=1e-6,
            why="Token mean of -A: -(1*2 + (-1)*6) / (2 + 6) = 4 / 8 = 0.5. Not zero whenever length correlates with reward.",
        ),
        Question(
            "q3",
            "Without the ratio correction (`use_bias_correction_kl=False`), the expected gradient of the k3 term, "
            "with tokens sampled from $\\pi_\\theta$, is the gradient of which divergence?",
            options={
                "a": "the reverse KL, $\\mathrm{KL}(\\pi_\\theta \\| \\pi_{ref})$",
                "b": "the forward KL, $\\mathrm{KL}(\\pi_{ref} \\| \\pi_\\theta)$",
                "c": "the Jensen-Shannon divergence",
                "d": "none: its expected gradient is 0",
            },
            answer="b",
            why="d k3/d log pi = 1 - pi_ref/pi, so E_pi[(1 - pi_ref/pi) grad log pi] = -sum_x pi_ref grad log pi = "
            "grad KL(pi_ref || pi_theta). Multiplying k3 by the ratio r gives grad KL(pi_theta || pi_ref), the KL it estimates.",
        ),
        Question(
            "q4",
            "A token with $A > 0$ has ratio $r = 1.4$; `epsilon=0.2`, `epsilon_high=0.28`. What gradient does it get?",
            options={
                "a": "the usual push up, $-A\\,r\\,\\nabla\\log\\pi$",
                "b": "zero: the clipped branch, a constant, wins",
                "c": "a push down",
                "d": "it depends on `loss_type`",
            },
            answer="b",
            why="min(rA, clip(r, 0.8, 1.28) A) = 1.28 A, a constant: the token already moved past the edge in the direction "
            "its advantage wants, so it stops pushing (TRL counts it in clip_ratio/high_mean).",
        ),
    ],
)

concept_questions(
    "04-concepts",
    [
        Question(
            "q1",
            "The model's logits over prompt + completion are $[B, L, V]$ with $P$ prompt tokens. Which position's "
            "logits give the log-prob of completion token $t$ (counting from 0)?",
            options={"a": "$P + t$", "b": "$P - 1 + t$", "c": "$t$", "d": "$L - 1 - t$"},
            answer="b",
            why="Position j predicts token j + 1. Completion token t sits at position P + t, so it is predicted at P - 1 + t; "
            "the last position's logits predict a token that does not exist yet.",
        ),
        Question(
            "q2",
            "When can the clip in the GRPO loss be active?",
            options={
                "a": "at every update",
                "b": "only when the policy that is trained differs from the one that sampled: from the second update "
                "on one batch (`num_iterations > 1`) or with a different sampler",
                "c": "only with `beta > 0`",
                "d": 'never with `loss_type="grpo"`',
            },
            answer="b",
            why="With one update per batch the old log-probs are the current ones, ratio 1, far from the edges. Only after "
            "an update (or with a sampler such as vLLM whose numbers differ) can r leave [1 - eps, 1 + eps_high].",
        ),
        Question(
            "q3",
            "Completions were sampled at temperature 0.7, but the training step computes log-probs at temperature 1.0. "
            "What goes wrong?",
            options={
                "a": "nothing: temperature only matters while sampling",
                "b": "the ratio and the gradient refer to a different distribution than the one that produced the "
                "samples, so the update is not the policy gradient of the sampler",
                "c": "the loss becomes NaN",
                "d": "EOS is never sampled",
            },
            answer="b",
            why="The samples came from softmax(logits / 0.7); the importance ratio and the gradient must use that same "
            "tempered distribution (TRL divides the logits by `temperature` in the loss as well).",
        ),
        Question(
            "q4",
            "Over a run, entropy falls, `frac_reward_zero_std` climbs toward 1 and held-out accuracy falls while the "
            "loss stays near 0. What is happening?",
            options={
                "a": "the run is converging",
                "b": "a collapse: groups become uniformly wrong, get zero advantage, "
                "and nothing pulls the policy back",
                "c": "the reward function is broken",
                "d": "the clip is too wide",
            },
            answer="b",
            why="A group whose samples are all wrong has zero variance and no gradient; once the policy is confidently wrong "
            "nothing corrects it. The loss cannot show this (it is about 0 by construction).",
        ),
    ],
)

concept_questions(
    "05-concepts",
    [
        Question(
            "q1",
            "TRL 1.16, one process: `per_device_train_batch_size=128`, `num_generations=8`, "
            "`gradient_accumulation_steps=1`. How many distinct prompts does one step train on?",
            answer=16,
            tolerance=0,
            why="per_device_train_batch_size counts completions: 128 completions / 8 per prompt = 16 prompts.",
        ),
        Question(
            "q2",
            "A reward function returns `None` for a completion. What does TRL do with it?",
            options={
                "a": "treats it as 0.0",
                "b": "leaves that function out for that completion when it combines the rewards ('not applicable')",
                "c": "raises an error",
                "d": "drops the prompt from the batch",
            },
            answer="b",
            why="None means 'does not apply'; TRL combines the other functions' rewards. A row where every function "
            "returned None gets advantage 0.",
        ),
        Question(
            "q3",
            "With `beta > 0`, how does TRL 1.16 build the reference model when you pass a model object?",
            options={
                "a": "it deep-copies the model in memory",
                "b": "it loads `model.config._name_or_path` from disk, so a model that exists only in memory must be "
                "saved first",
                "c": "it uses no reference",
                "d": "it always uses the PEFT base model",
            },
            answer="b",
            why="TRL reloads the reference by name or path; an unsaved SFT warm start would silently be replaced by "
            "whatever that path holds (or fail). `train_with_trl` saves the model to a temporary folder first.",
        ),
    ],
)

concept_questions(
    "08-concepts",
    [
        Question(
            "q1",
            "`kd_loss(..., beta=0)` (TRL's convention) is which divergence, and how does an under-sized student "
            "fit a two-mode teacher with it?",
            options={
                "a": "KL(student || teacher): it picks one mode",
                "b": "KL(teacher || student): it spreads over both modes (mode-covering)",
                "c": "KL(teacher || student): it picks one mode",
                "d": "the Jensen-Shannon divergence: it matches exactly",
            },
            answer="b",
            why="Weighted by the teacher, forward KL punishes the student wherever the teacher has mass it lacks, so it "
            "covers every mode, even putting mass in the valley between them.",
        ),
        Question(
            "q2",
            "Teacher $(0.5, 0.5)$, student $(0.9, 0.1)$ over a two-token vocabulary. What is the forward KL "
            "$\\mathrm{KL}(p_t \\| p_s)$ in nats? (three decimals)",
            answer=0.5 * math.log(0.5 / 0.9) + 0.5 * math.log(0.5 / 0.1),
            tolerance=0.001,
            why="0.5 ln(0.5/0.9) + 0.5 ln(0.5/0.1) = -0.294 + 0.805 = 0.511.",
        ),
        Question(
            "q3",
            "Why does token-level KD need the teacher and the student to share a vocabulary, when sequence-level "
            "KD does not?",
            options={
                "a": "it does not; any two tokenizers work",
                "b": "the divergence compares the two next-token distributions id by id; sequence-level KD only "
                "trains on the teacher's text",
                "c": "because of the temperature",
                "d": "because TRL requires the same model class",
            },
            answer="b",
            why="If id 17 is '7' for one model and '+' for the other, the per-id comparison is meaningless. Text can be "
            "re-tokenized by any student.",
        ),
    ],
)

concept_questions(
    "09-concepts",
    [
        Question(
            "q1",
            'What is distinct-2 of `["a b a b", "a b"]`?',
            answer=0.5,
            tolerance=1e-9,
            why="Bigrams within each text: (a,b), (b,a), (a,b) and (a,b): 2 distinct of 4.",
        ),
        Question(
            "q2",
            "Why does the Gaussian refit-and-resample loop lose its tails?",
            options={
                "a": "floating-point rounding",
                "b": "each fit's variance is biased low and log sigma drifts down in a random walk; nothing pulls it back",
                "c": "the samples are sorted",
                "d": "the mean drifts to zero",
            },
            answer="b",
            why="E[s^2] = (n-1)/n sigma^2 with the maximum-likelihood fit, and even unbiased estimates make log sigma drift "
            "down (Jensen). Each generation sees only the last one's samples, so the lost spread never comes back.",
        ),
        Question(
            "q3",
            "What do Shumailov et al. (Nature 631:755-759, 2024) report for language models fine-tuned on their "
            "predecessors' output when 10% of the original data is kept in each generation?",
            options={
                "a": "collapse is prevented entirely",
                "b": "the degradation is reduced, not removed",
                "c": "no effect",
                "d": "the degradation is worse",
            },
            answer="b",
            why="Keeping 10% of the original data made the degradation smaller. That accumulating data, rather than "
            "replacing it, avoids collapse is a later result (Gerstgrasser et al., arXiv 2404.01413).",
        ),
        Question(
            "q4",
            "In this notebook's language-model loop, which number tells you that the unverified loop went wrong "
            "even if its answers stay varied?",
            options={
                "a": "distinct-1 of the samples",
                "b": "held-out accuracy (and the share of correct samples)",
                "c": "the per-prompt answer entropy",
                "d": "the number of generations",
            },
            answer="b",
            why="A sampled LM keeps adding fresh noise, so variety need not fall; what compounds are its errors. Diversity "
            "metrics alone can look healthy while correctness drains: measure accuracy with a verifier.",
        ),
    ],
)
