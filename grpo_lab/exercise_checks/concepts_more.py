"""Concept questions at the end of notebooks 00, 04a, 06, 07 and 10 (``concepts`` holds the others).

Registered like those: ``check("<nn>-concepts", {"q1": "b", ...})`` grades them, a wrong answer prints its
explanation, and the solution notebooks show the same text (``grading.questions_markdown``). Notebooks 06 and 10
have no function to write: their exercise notebooks hold these questions only.
"""

import math

from grpo_lab.grading import Question, concept_questions

concept_questions(
    "00-concepts",
    [
        Question(
            "q1",
            "The tiny models use a character-level tokenizer. Prompted with `12+35=`, how many tokens must a model "
            "generate to give the right answer and stop (the end-of-sequence token included)?",
            answer=len("47") + 1,
            tolerance=0,
            why="One token per character: `4`, `7`, then the end-of-sequence token, 3 in all. Every digit is its own "
            "decision, which is what makes arithmetic visible (and learnable) for a char-level model.",
        ),
        Question(
            "q2",
            "Every task splits its problems into a training part and a held-out part by a hash of each problem. "
            "Why a hash, and not a fresh random sample of held-out problems for each run?",
            options={
                "a": "a hash is faster to compute than a random sample",
                "b": "hashing puts the harder problems in the held-out part",
                "c": "the split is fixed once, whatever the seed or the number of problems drawn, so no problem is "
                "trained on in one run and scored as held-out in another, and identical problems land together",
                "d": "random samples cannot be reproduced",
            },
            answer="c",
            why="A per-run random split lets a problem be trained on in one run and evaluated in the next, and an "
            "exact duplicate can sit on both sides. The hash of the problem decides once, for every seed and size, "
            "so 'held-out accuracy' always means problems the model never saw.",
        ),
        Question(
            "q3",
            "GRPO samples a group of $G$ answers to one prompt. What does it compare each answer's reward with?",
            options={
                "a": "a fixed threshold, 0.5",
                "b": "the prediction of a learned value model",
                "c": "the reward of the reference model's greedy answer",
                "d": "the mean reward of the $G$ answers to the same prompt",
            },
            answer="d",
            why="The group is its own baseline: an answer is pushed up when it beats its siblings' mean and down when it "
            "falls short (Shao et al., arXiv 2402.03300). A group whose answers are all right, or all wrong, "
            "therefore teaches nothing; notebook 02 builds this.",
        ),
        Question(
            "q4",
            "On a free Colab T4, which dtype does `pick_dtype` choose for the GPU track?",
            options={
                "a": "bf16, as on every GPU",
                "b": "fp16: a T4 has no native bf16, and its tensor cores run fp16 fast",
                "c": "fp32: GPUs are too imprecise for training in anything else",
                "d": "int8",
            },
            answer="b",
            why="bf16 is used only where the hardware supports it natively (Ampere and later: A100, H100); a T4 "
            "(Turing) would emulate it slowly. fp16 has a narrow range (at most 65504; tiny gradients underflow to 0), "
            "so training in it needs a loss scaler (notebook 06). A CPU gets fp32.",
        ),
    ],
)

concept_questions(
    "04a-concepts",
    [
        Question(
            "q1",
            "In GAE set $\\gamma = \\lambda = 1$, drop the KL penalty (the score $R$ sits on the last token, 0 "
            "elsewhere) and replace the critic by a constant: $V_t = \\bar R$, the mean score of the $G$ completions "
            "sampled for the same prompt. What is $A_t$?",
            options={
                "a": "$R - \\bar R$ for every token: GRPO's advantage without the division by the group's std",
                "b": "$R - \\bar R$ on the last token and 0 on the others",
                "c": "$(R - \\bar R) / \\mathrm{std}$ for every token, exactly GRPO's default",
                "d": "0 for every token: a constant critic cancels",
            },
            answer="a",
            why="With gamma = lam = 1 the TD residuals telescope: A_t = (sum of rewards from t on) - V_t = R - mean for "
            'every token. That is GRPO with `scale_rewards="none"` (Dr. GRPO, arXiv 2503.20783): the group mean is '
            "a Monte-Carlo estimate of the value of the prompt.",
        ),
        Question(
            "q2",
            "A completion of 3 tokens scores 1 on its last token; no KL penalty, a fresh critic ($V = 0$), "
            "$\\gamma = 1$, $\\lambda = 0.95$. What is the advantage of its first token? (three decimals)",
            answer=0.95**2,
            tolerance=0.001,
            why="With V = 0 every delta_t is r_t: (0, 0, 1). Backwards: A_2 = 1, A_1 = 0 + 0.95 * 1 = 0.95, "
            "A_0 = 0.95 * 0.95 = 0.9025: lambda < 1 discounts credit for tokens far from the reward, the "
            "(0.90, 0.95, 1.00) the notebook prints.",
        ),
        Question(
            "q3",
            "In this notebook both algorithms score with the same verifier. How many networks does PPO hold in "
            "memory (`kl_coef=0.05`), and how many does GRPO (`beta=0`)?",
            options={"a": "4 and 2", "b": "3 and 2", "c": "3 and 1", "d": "2 and 1"},
            answer="c",
            why="PPO: the policy, a critic as large as the policy (trained) and a frozen reference for the KL penalty; "
            "the verifier replaces RLHF's reward model, its fourth network. GRPO: the policy alone, since the group "
            "mean replaces the critic and beta = 0 needs no reference (2.40M against 0.80M parameters here).",
        ),
        Question(
            "q4",
            "What does PPO's critic regress onto?",
            options={
                "a": "the completion's final score, at every token",
                "b": "$R_t = A_t + V_t$, the $\\lambda$-return computed once per batch with the values recorded at "
                "rollout, under a clipped value loss",
                "c": "the mean reward of the batch",
                "d": "the whitened advantages",
            },
            answer="b",
            why="R_t = A_t + V_t (Schulman et al., arXiv 1506.02438): with lam = 1 the reward to go (a Monte-Carlo "
            "target), with lam = 0 the TD target r_t + gamma V_{t+1}. The targets stay fixed over the passes on a "
            "batch, and the clip keeps V within cliprange_value of its rollout value.",
        ),
    ],
)

concept_questions(
    "06-concepts",
    [
        Question(
            "q1",
            "The untrained SmolLM2 scores 0.503 on 300 held-out problems. What is the standard error of that "
            "accuracy? (three decimals)",
            answer=math.sqrt(0.503 * 0.497 / 300),
            tolerance=0.001,
            why="sqrt(p(1-p)/n) = sqrt(0.503 * 0.497 / 300) = 0.029. A before/after difference is only worth reading "
            "when it is several of these: the run's +0.283 is, a 0.02 change would not be.",
        ),
        Question(
            "q2",
            "Training caps completions at 32 tokens. Why is the report's `accuracy_before` the untrained model with "
            "128 new tokens, and not at the cap?",
            options={
                "a": "128 tokens make greedy decoding deterministic",
                "b": "at the cap the untrained model is often cut off mid-explanation; a trained model that learned "
                "to answer briefly would 'gain' accuracy without knowing more arithmetic",
                "c": "the trained model is evaluated with 128 tokens too, so the budgets must match",
                "d": "the verifier needs at least 128 tokens to find an answer",
            },
            answer="b",
            why="At the cap the untrained model got 0.273, with a generous budget 0.503: the difference is brevity, a "
            "real change of the policy but not new arithmetic. Measuring the gain from 0.503 counts only what the "
            "model learned about the task.",
        ),
        Question(
            "q3",
            "The trainers open `torch.autocast` around each forward pass, never once around the whole training "
            "loop. Why?",
            options={
                "a": "autocast regions cannot be nested, and generation opens its own",
                "b": "fp16's loss scaler only updates its scale when an autocast region exits",
                "c": "the optimizer step must run in fp32, and autocast would run it in low precision",
                "d": "autocast caches the low-precision copy of every weight it casts until the outermost region "
                "exits, so forwards after an optimizer step in the same region would still read the old weights",
            },
            answer="d",
            why="The cache saves a cast per forward (PyTorch AMP docs, 'Autocasting'), but an optimizer step updates the "
            "fp32 weights in place and the cached bf16/fp16 copies do not follow. A fresh region per forward "
            "starts with an empty cache, and grpo_lab's trainer refuses to take a step inside a region.",
        ),
        Question(
            "q4",
            "In the CPU track training draws from only 63 problems and 300 are held out. Suppose the training "
            "reward climbed to 0.9 while the held-out accuracy did not move. What would that say?",
            options={
                "a": "the verifier is too strict",
                "b": "the learning rate is too low",
                "c": "the policy fitted the 63 training problems (their answers), not arithmetic",
                "d": "held-out problems are harder by construction",
            },
            answer="c",
            why="Reward is measured on the training prompts; a model can memorise 63 answers. The lopsided split makes "
            "the held-out accuracy count only what transfers to problems never trained on: the gap between the two "
            "is the sign of fitting the training set.",
        ),
    ],
)

concept_questions(
    "07-concepts",
    [
        Question(
            "q1",
            "Three independent members are each right with probability 0.6. Wrong answers never coincide (each "
            "wrong member names its own wrong number) and ties are broken at random. What is the accuracy of their "
            "plurality vote? (three decimals)",
            answer=0.6**3 + 3 * 0.6**2 * 0.4 + 3 * 0.6 * 0.4**2 / 3,
            tolerance=0.002,
            why="3 right: 0.216; 2 right: 3 * 0.36 * 0.4 = 0.432 (two votes beat two different singles); 1 right: "
            "3 * 0.6 * 0.16 = 0.288, a three-way tie won 1/3 of the time, 0.096. Total 0.744 = "
            "`cost.vote_accuracy(3, 0.6)`; with a yes/no answer (one wrong value) it would be 0.648.",
        ),
        Question(
            "q2",
            "Members trained on the same data make correlated errors: hard problems are hard for all of them. "
            "In the shared-difficulty model, what does a vote of $n$ members reach as the error correlation goes to 1?",
            options={
                "a": "1, for large enough n",
                "b": "p^n",
                "c": "the accuracy p of one member, whatever n",
                "d": "0.5",
            },
            answer="c",
            why="With correlation 1 the members are right on the same problems and wrong on the same ones, so the vote "
            "repeats one member. A vote helps exactly as much as the members' errors are independent; notebook "
            "07's seeds fell short of the independent formula for this reason.",
        ),
        Question(
            "q3",
            "On 300 problems, 46 are right only by the vote and 41 only by greedy decoding. What is the paired "
            "standard error of the difference in accuracy (vote - greedy)? (three decimals)",
            answer=math.sqrt(46 + 41 - (46 - 41) ** 2 / 300) / 300,
            tolerance=0.001,
            why="Only the discordant problems carry information: sqrt(b + c - (b - c)^2 / n) / n = sqrt(87 - 0.083) / 300 "
            "= 0.031. The difference (46 - 41) / 300 = +0.017 is about half a standard error: no evidence that "
            "the vote helped.",
        ),
        Question(
            "q4",
            "A small model on arithmetic scores 0.47 with greedy decoding, 0.49 with the majority of 5 samples "
            "and 0.75 pass@5. What does the gap between majority@5 and pass@5 mean?",
            options={
                "a": "the vote is computed wrongly",
                "b": "on many problems a right answer is among the samples but not the most common one: a verifier "
                "that could pick it would gain, a vote does not",
                "c": "5 samples are too many",
                "d": "pass@5 counts a problem twice",
            },
            answer="b",
            why="pass@k only asks that some sample be right: the ceiling of a perfect verifier. A vote needs the right "
            "answer to be the plurality: Wang et al. (arXiv 2203.11171) report +17.9 points on GSM8K for "
            "PaLM-540B, whose samples are right often enough.",
        ),
    ],
)

concept_questions(
    "10-concepts",
    [
        Question(
            "q1",
            "Inference costs about $2 \\times \\text{parameters} \\times \\text{tokens}$ FLOPs per answer. The "
            "ensemble is 3 teachers of 154,688 parameters, the student has 28,064, and both read and write the same "
            "tokens. What fraction of the ensemble's FLOPs per answer does the student spend? (two decimals)",
            answer=28064 / (3 * 154688),
            tolerance=0.005,
            why="The tokens and the factor 2 cancel: 28,064 / (3 * 154,688) = 0.06. The ensemble pays for every member; "
            "the distilled student pays for one model smaller than any of them.",
        ),
        Question(
            "q2",
            "The three teachers score 0.283, 0.312 and 0.315; their vote scores 0.292 and they agree on 30% of "
            "problems. What is the most likely reason the vote does not beat the best teacher?",
            options={
                "a": "a vote of three can never beat its best member",
                "b": "the teachers share one warm start, so their errors are correlated, and two teachers that agree "
                "on a wrong sum outvote a right one",
                "c": "a vote needs an even number of members",
                "d": "the vote ignores equivalent spellings of numbers",
            },
            answer="b",
            why="Independent members right 30% of the time whose wrong answers never coincide would vote to 0.363 "
            "(`cost.vote_accuracy(3, 0.3)`), above each of them. Members that make the same mistakes add little "
            "information (notebook 07): a shared wrong sum wins the plurality.",
        ),
        Question(
            "q3",
            "Why is `gold-sft` (the same student model, trained the same way on the gold answers of the pool) the "
            "baseline the distilled student must be compared with?",
            options={
                "a": "only the labels differ: if gold-sft is as accurate, the teachers added nothing a labelled "
                "dataset would not give, and the pipeline earns its cost only where labels are scarce",
                "b": "gold labels are noisier than a vote",
                "c": "the verifier cannot run without gold-sft",
                "d": "it measures the cost of inference",
            },
            answer="a",
            why="The verifier here checks against gold answers, so the verified labels are a subset of the gold ones "
            "(1,830 of 6,406 in the notebook's run). A comparison with the teachers alone would credit "
            "distillation with what plain supervised learning on the same problems gives.",
        ),
        Question(
            "q4",
            "`vote-unverified` (0.347) trains on every voted label; the verified student (0.957) only on the "
            "labels the verifier accepted. What explains the gap?",
            options={
                "a": "the verified dataset is larger",
                "b": "the unverified student was trained for fewer steps",
                "c": "about 71% of the unverified labels are wrong (label accuracy 0.286), and the student learns "
                "the ensemble's mistakes as faithfully as its right answers",
                "d": "the unverified student is a smaller model",
            },
            answer="c",
            why="Distillation copies whatever it is given. Filtering by a verifier leaves fewer examples (1,830 of 6,406) "
            "but only right ones; recursing on unverified outputs is the loop that collapses in notebook 09.",
        ),
    ],
)
