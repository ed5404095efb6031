"""Shared fixtures: very small configs so each test compiles quickly on 2 CPU cores.

Compiled programs go to a persistent JAX cache shared by the suite's workers and the programs
they start: many tests compile the same train step of the same micro model, which is then
compiled once. The slowest files are handed out first, so that the two workers finish together.
"""

import os
import pathlib
import tempfile

os.environ.setdefault("JAX_COMPILATION_CACHE_DIR",
                      os.path.join(tempfile.gettempdir(), "llm-lifecycle-tests-jax-cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")

import numpy as np
import pytest

from llm.config import default_config, load_experiment as load_experiment_config  # noqa: F401

ROOT = pathlib.Path(__file__).resolve().parents[1]
# Files that take minutes (each runs a training subprocess or a whole pipeline): first in line.
SLOW_FILES = ("tests/test_lifecycle.py", "tests/parallel/test_layouts.py",
              "tests/align/test_ppo_mesh.py", "tests/interop/test_smollm2.py",
              "tests/train/test_crash_resume.py", "tests/parallel/test_pipeline_schedules.py",
              "tests/research/test_sweep_run.py")


def pytest_collection_modifyitems(items):
  """Slow files first (stable otherwise): pytest-xdist hands files out in this order."""
  def rank(item):
    path = item.nodeid.split("::")[0]
    return SLOW_FILES.index(path) if path in SLOW_FILES else len(SLOW_FILES)
  items.sort(key=rank)


def micro_config(**model_overrides):
  """A 2-layer, d=32 model with a 64-token vocabulary, sequences of 16."""
  c = default_config()
  c.name = "micro"
  model = c.model
  model.vocab_size, model.d_model, model.num_layers = 64, 32, 2
  model.num_heads, model.num_kv_heads, model.head_dim, model.mlp_dim = 4, 2, 8, 64
  model.max_seq_len = 32
  model.rope.original_max_seq_len = 32
  for key, value in model_overrides.items():
    model[key] = value
  c.data.seq_len = 16
  c.data.tokenizer_vocab_size = 64
  c.train.steps, c.train.batch_size, c.train.progress = 20, 4, False
  c.optim.warmup_steps = 2
  c.train.eval_every = 0
  return c


@pytest.fixture
def micro():
  return micro_config()


@pytest.fixture(scope="session")
def small_tokenizer(tmp_path_factory):
  """A 2,000-piece BPE model on English prose and Python code."""
  from llm.data.curation.sources import load_documents
  from llm.tokenizer import train_tokenizer
  texts = [d["text"] for source in ("shakespeare", "python_stdlib")
           for d in load_documents(source, 200_000)]
  return train_tokenizer(texts, 2000, str(tmp_path_factory.mktemp("tok") / "small.model"))


def random_rows(n=64, seq=16, vocab=64, seed=0):
  """Packed-row arrays of random tokens (one document per row), as the loader yields them."""
  rng = np.random.default_rng(seed)
  tokens = rng.integers(4, vocab, size=(n, seq + 1)).astype(np.int32)
  ones = np.ones((n, seq), np.int32)
  return {"inputs": tokens[:, :-1], "targets": tokens[:, 1:], "segment_ids": ones,
          "positions": np.tile(np.arange(seq, dtype=np.int32), (n, 1)), "loss_mask": ones}


def micro_lifecycle_run(root: pathlib.Path, tokenizer, steps: int, rows=None):
  """A micro pretraining run laid out like the lifecycle (ROOT/pretrain beside
  ROOT/data/tokenizer.model): (task, train result)."""
  import shutil
  from llm.train.lm_task import LMTask
  from llm.train.loop import train
  (root / "data").mkdir()
  shutil.copy(tokenizer.path, root / "data" / "tokenizer.model")
  config = micro_config(vocab_size=tokenizer.vocab_size)
  config.train.steps, config.checkpoint.every_steps = steps, steps
  task = LMTask(config, random_rows() if rows is None else rows)
  return task, train(config, task, str(root / "pretrain"))
