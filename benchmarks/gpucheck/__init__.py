"""The checks behind ``benchmarks/gpu_check.sh``, one module per kind: ``learning`` (GRPO must learn, in the dtype it
claims), ``lora`` (fp32 adapters, the saved adapter reloads), ``shapes`` (the GPU presets at their real shapes:
memory, time, the from-scratch trainer under gradient checkpointing), ``weights`` (updates reach the next forward)
and ``common`` (rows, injected defects, the dtype probe, the statistics)."""
