"""GSM8K (Cobbe et al., arXiv 2110.14168): loading (hub or a local jsonl), an offline split, and the task.

- Gold answers follow the last ``####`` of a solution; some have thousands separators (``parse_gsm8k_answer``).
- Offline the package ships the train split (``grpo_lab/data/gsm8k/train.jsonl.xz``, MIT); the held-out part is
  ``gsm8k_split`` of it (a hash of the question, so no question is in both parts). On Colab with no local
  file, train = the hub's train split and held-out = its test split.
- ``GSM8KTask.check`` is the lenient verifier ``rewards.is_correct`` (any final answer, by mathematical
  equivalence): the training reward and the greedy accuracy of ``evaluation.evaluate``.
"""

from __future__ import annotations

import json
import lzma
import os
import random
from collections.abc import Iterable
from pathlib import Path

from grpo_lab.errors import MissingDataError
from grpo_lab.tasks.base import DatasetFormatError, Problem, Task, is_heldout_key
from grpo_lab.tasks.prompts import DEFAULT_SYSTEM

GSM8K_HUB = ("openai/gsm8k", "main")


def parse_gsm8k_answer(answer: str) -> str:
    """The gold answer of a GSM8K solution: the text after the last ``####``, thousands separators removed.

    ``"... #### 1,000"`` -> ``"1000"``. Raises ``DatasetFormatError`` when there is no ``####`` line.
    """
    if not isinstance(answer, str) or "####" not in answer:
        raise DatasetFormatError(f"a GSM8K answer must end with '#### <number>'; got {str(answer)[-60:]!r}")
    gold = answer.rsplit("####", 1)[1].strip()
    return gold.replace(",", "").replace("$", "").rstrip(".")


def find_project_root(start: str | Path | None = None) -> Path | None:
    """The nearest folder at or above ``start`` (default: the cwd, then this package) holding ``pyproject.toml``."""
    starts = [Path(start)] if start else [Path.cwd(), Path(__file__).resolve().parent]
    for s in starts:
        for p in [s.resolve(), *s.resolve().parents]:
            if (p / "pyproject.toml").exists() and (p / "grpo_lab").is_dir():
                return p
    return None


def local_gsm8k_path() -> Path | None:
    """The offline GSM8K train file: ``$GRPO_LAB_GSM8K`` when set, else the copy shipped inside the package
    (``grpo_lab/data/gsm8k/train.jsonl.xz``, MIT licence, 7,473 problems; see the README beside it). The copy is
    xz-compressed (4.2 MB of JSON lines in 1.0 MB); ``load_gsm8k`` reads ``.xz`` and plain files alike."""
    if os.environ.get("GRPO_LAB_GSM8K"):
        p = Path(os.environ["GRPO_LAB_GSM8K"])
        return p if p.exists() else None
    p = Path(__file__).resolve().parents[1] / "data" / "gsm8k" / "train.jsonl.xz"  # grpo_lab/data
    return p if p.exists() else None


def _gsm8k_rows(rows: Iterable[dict], source: str) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "question" not in row or "answer" not in row:
            raise DatasetFormatError(f"{source}: row {i} needs 'question' and 'answer' fields; got {str(row)[:80]!r}")
        try:
            gold = parse_gsm8k_answer(row["answer"])
        except DatasetFormatError as e:
            raise DatasetFormatError(f"{source}: row {i}: {e}") from None
        out.append({"question": row["question"], "solution": row["answer"], "answer": gold})
    return out


def load_gsm8k(split: str = "train", path: str | Path | None = None, limit: int | None = None) -> list[dict]:
    """GSM8K rows as ``{"question", "solution", "answer"}`` (``answer`` = parsed gold).

    Reads ``path`` (a jsonl with ``question``/``answer``) if given, else the local course copy for the
    train split when present, else the hub (``datasets.load_dataset("openai/gsm8k", "main")``, the path
    Colab users take). Offline with no local file, the error says what to pass.
    """
    if path is None and split == "train":
        path = local_gsm8k_path()
    if path is not None:
        path = Path(path)
        rows = []
        # lzma is in the standard library; the shipped copy is compressed to keep the package small.
        with lzma.open(path, "rt", encoding="utf-8") if path.suffix == ".xz" else path.open(encoding="utf-8") as f:
            for lineno, line in enumerate(f, 1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DatasetFormatError(
                        f"{path}:{lineno}: not JSON ({e.msg}); one object per line expected"
                    ) from None
                if limit and len(rows) >= limit:
                    break
        return _gsm8k_rows(rows, str(path))
    try:
        from datasets import load_dataset

        ds = load_dataset(*GSM8K_HUB, split=split)
    except Exception as err:
        raise MissingDataError(
            f"cannot load GSM8K {split!r} from the hub ({type(err).__name__}); pass path=<jsonl with question/answer> "
            "or set GRPO_LAB_GSM8K"
        ) from err
    rows = ds if limit is None else ds.select(range(min(limit, len(ds))))
    return _gsm8k_rows(rows, "openai/gsm8k")


def gsm8k_split(rows: list[dict], n_heldout: int, seed: int = 0) -> tuple[list[dict], list[dict]]:
    """Split GSM8K rows into (train, held-out) deterministically by a hash of the question.

    Used when only the train file is available offline: the held-out part never shares a question with
    the train part (exact duplicates included, since the hash is of the text).
    """
    held = [r for r in rows if is_heldout_key("gsm8k:" + r["question"].strip())]
    train = [r for r in rows if not is_heldout_key("gsm8k:" + r["question"].strip())]
    random.Random(seed).shuffle(held)
    return train, held[:n_heldout]


class GSM8KTask(Task):
    """GSM8K as a ``Task``. ``check`` is the lenient verifier (``rewards.is_correct``), the training reward.

    ``source``: ``"auto"`` (the local train file split by ``gsm8k_split`` when present, else the hub
    train/test splits), ``"local"``, ``"hub"``, or a path to a jsonl. ``tokenizer``: prompts are rendered with
    its chat template (system prompt ``DEFAULT_SYSTEM`` asks for ``#### <number>``); without one the prompt is
    the bare question. ``n_heldout``: size of the offline held-out pool (the hash split yields ~1/5 of the
    file; we keep at most this many).
    """

    name = "gsm8k"
    answer_tokens = 256  # reasoning, then the answer
    has_strict_check = True

    def __init__(
        self,
        tokenizer=None,
        source: str | Path = "auto",
        n_heldout: int = 1000,
        limit: int | None = None,
        system: str | None = DEFAULT_SYSTEM,
    ):
        self.tokenizer, self.source, self.n_heldout, self.limit, self.system = (
            tokenizer,
            source,
            n_heldout,
            limit,
            system,
        )
        self.where = ""
        self._rows: tuple[list[dict], list[dict]] | None = None

    def rows(self) -> tuple[list[dict], list[dict]]:
        """(train rows, held-out rows), loaded once. Offline the two never share a question."""
        if self._rows is None:
            src = self.source
            path = local_gsm8k_path() if src in ("auto", "local") else (None if src == "hub" else Path(src))
            if src == "local" and path is None:
                raise MissingDataError("no local GSM8K file: set GRPO_LAB_GSM8K or use source='hub'")
            if path is not None:
                self.where = f"{path} (held-out = gsm8k_split of the train file)"
                self._rows = gsm8k_split(load_gsm8k(path=path, limit=self.limit), self.n_heldout, seed=0)
            else:
                self.where = "openai/gsm8k on the hub (train split; held-out = test split)"
                self._rows = (load_gsm8k("train", limit=self.limit), load_gsm8k("test", limit=self.limit))
        return self._rows

    def to_problem(self, row: dict) -> Problem:
        """A ``Problem`` from a row, its prompt rendered by ``Task.render`` (``prompts.model_prompt``): the chat
        template for a chat model's tokenizer, else the bare question."""
        return self.render(
            Problem(row["question"], row["question"], row["answer"], {"solution": row.get("solution", "")})
        )

    def key(self, problem: Problem) -> str:
        return problem.question

    def check(self, problem: Problem, answer: str | None) -> bool:
        """``rewards.is_correct(answer, gold)``: the final answer of the completion equals the gold one."""
        from grpo_lab.rewards import is_correct

        return answer is not None and is_correct(answer, problem.answer)

    def check_strict(self, problem: Problem, completion: str) -> bool:
        """``rewards.strict_is_correct``: reasoning, then exactly one final ``#### x`` equal to the gold answer."""
        from grpo_lab.rewards import strict_is_correct

        return strict_is_correct(completion, problem.answer)

    def extract(self, completion: str) -> str | None:
        """``rewards.extract_answer``: the last ``\\boxed{}``, ``#### x``, "the answer is x" or last number."""
        from grpo_lab.rewards import extract_answer

        return extract_answer(completion)

    def train(self, n: int, seed: int = 0) -> list[Problem]:
        """``n`` training problems: a seeded shuffle of the train part, cycled if ``n`` is larger."""
        rows = list(self.rows()[0])
        random.Random(f"gsm8k:train:{seed}").shuffle(rows)
        return [self.to_problem(rows[j % len(rows)]) for j in range(n)]

    def heldout(self, n: int, seed: int = 0) -> list[Problem]:
        """The first ``n`` held-out problems: a fixed subset (the order is fixed by the split, not by ``seed``),
        so before/after numbers and different runs use the same problems."""
        return [self.to_problem(r) for r in self.rows()[1][:n]]

    def sample(self, n: int, seed: int = 0, split: str = "train") -> list[Problem]:
        return self.train(n, seed) if split == "train" else self.heldout(n, seed)
