"""Every test writes its remembered evaluations (``jobs.evaluate_untrained``) into its own temporary folder,
never into the user's cache (``models.cache_dir()``): a test must not read a result another run left behind."""

import pytest


@pytest.fixture(autouse=True)
def _private_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("GRPO_LAB_EVAL_CACHE", str(tmp_path_factory.mktemp("eval_cache")))
