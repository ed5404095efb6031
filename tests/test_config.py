"""Each invalid config fails a run's validation (the shared fields in llm/config.py, the model's
choices in llm/model/config_checks.py, the objective's own fields from the registry) with a
message naming the field."""

import subprocess
import sys

import pytest

from llm.align.registry import check_run_config as validate
from llm.config import ConfigError
from tests.conftest import ROOT, load_experiment_config, micro_config

CASES = [
    ("model.num_heads", lambda c: setattr(c.model, "num_kv_heads", 3), "not divisible"),
    ("model.head_dim", lambda c: setattr(c.model, "head_dim", 7), "even"),
    ("model.attention_impl", lambda c: setattr(c.model, "attention_impl", "magic"),
     "unknown attention implementation"),
    ("optim.warmup_steps", lambda c: setattr(c.optim, "warmup_steps", 10_000),
     "longer than the run"),
    ("model.rope.scaling", lambda c: setattr(c.model.rope, "scaling", "xpos"),
     "unknown RoPE scaling"),
    ("model.remat_policy", lambda c: setattr(c.model, "remat_policy", "some"),
     "unknown remat policy"),
    ("data.seq_len", lambda c: setattr(c.data, "seq_len", 1000), "exceeds model.max_seq_len"),
    ("train.batch_size", lambda c: setattr(c.train, "grad_accum", 3), "not divisible"),
    ("data.tokenizer_vocab_size", lambda c: setattr(c.data, "tokenizer_vocab_size", 10_000),
     "exceeds model.vocab_size"),
    ("model.compute_dtype", lambda c: setattr(c.model, "compute_dtype", "float8"),
     "unsupported dtype"),
    ("train.log_every", lambda c: setattr(c.train, "log_every", 0), ">= 1"),
    ("optim.clip_norm", lambda c: setattr(c.optim, "clip_norm", 0.0), "positive"),
    ("model.num_layers", lambda c: setattr(c.model, "num_layers", 0), "positive"),
    ("data.sft_path", lambda c: setattr(c.train, "task", "sft"), "JSONL"),
    ("optim.lr", lambda c: setattr(c.optim, "lr", -1.0), "positive"),
    ("model.lora.targets", lambda c: c.model.lora.update(rank=4, targets="q_proj,wq"),
     "unknown projections"),
    ("model.moe.top_k", lambda c: c.model.moe.update(num_experts=2, top_k=3), "must lie in"),
    ("align.dpo_loss", lambda c: c.update({"train": dict(c.train, task="dpo"),
                                           "align": dict(c.align, dpo_loss="kto")}), "ipo"),
]


@pytest.mark.parametrize("field,break_it,words", CASES, ids=[c[0] for c in CASES])
def test_invalid_config_names_the_field(field, break_it, words):
  config = micro_config()
  break_it(config)
  with pytest.raises(ConfigError) as error:
    validate(config)
  assert f"config.{field}:" in str(error.value)
  assert words in str(error.value)


@pytest.mark.parametrize("name", ["tiny", "small", "base", "base_1b", "llama3_8b", "moe_tiny",
                                  "mixtral_8x7b"])
def test_shipped_configs_are_valid(name):
  validate(load_experiment_config(name))


def test_main_reports_config_error_before_compiling(tmp_path):
  result = subprocess.run(
      [sys.executable, "-m", "llm.main", "--config=experiments/configs/tiny.py",
       "--config.model.num_kv_heads=3", f"--workdir={tmp_path}"],
      capture_output=True, text=True, cwd=str(ROOT),
      timeout=120)
  assert result.returncode != 0
  assert "invalid config: config.model.num_heads" in result.stderr
  assert not (tmp_path / "checkpoints").exists()


def test_load_experiment_by_name_and_path_and_missing():
  assert load_experiment_config("tiny").name == "tiny"
  assert load_experiment_config(str(ROOT / "experiments/configs/small.py")).name == "small"
  with pytest.raises(FileNotFoundError, match="experiments/configs"):
    load_experiment_config("no_such_config")
