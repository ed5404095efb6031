"""Our own training runs evaluated by the harness: `run:WORKDIR` rebuilds the trained model."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from llm.eval.models import Evaluated
from llm.train.run_loading import run_tokenizer
from llm.model.sampling import generate
from tests.conftest import micro_lifecycle_run


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory, small_tokenizer):
  """(workdir, task, trained params): 3 steps of the micro model, laid out like the lifecycle
  (ROOT/pretrain beside ROOT/data/tokenizer.model)."""
  root = tmp_path_factory.mktemp("lifecycle")
  task, result = micro_lifecycle_run(root, small_tokenizer, 3)
  return root / "pretrain", task, result["state"]["params"]


def test_a_run_is_rebuilt_with_its_trained_parameters_and_tokenizer(trained_run, small_tokenizer):
  workdir, task, params = trained_run
  model = Evaluated(f"run:{workdir}")
  assert model.tokenizer.vocab_size == small_tokenizer.vocab_size
  assert not model.can_chat  # a pretraining run is prompted by completion
  ids = jnp.asarray([small_tokenizer.encode("def main():\n    return 0")], jnp.int32)
  np.testing.assert_allclose(model.logits(ids), task.model(params)(ids), atol=1e-6, rtol=0)
  prompt = small_tokenizer.encode("To be, or not")
  expected = generate(task.graphdef, params, jnp.asarray([prompt], jnp.int32),
                      jax.random.key(0), max_new_tokens=6, temperature=0.0)[0].tolist()
  eos = small_tokenizer.eos_id
  assert model.greedy([prompt], 6) == [expected[:expected.index(eos)] if eos in expected
                                       else expected]


def test_run_models_explain_what_is_missing(trained_run, tmp_path):
  workdir, _, _ = trained_run
  assert run_tokenizer(str(workdir)).endswith("data/tokenizer.model")
  with pytest.raises(FileNotFoundError, match="--tokenizer"):
    run_tokenizer(str(tmp_path))
  for task in ("reward_model", "guard"):  # scalar heads, not language models
    scorer = tmp_path / task
    scorer.mkdir()
    saved = json.loads((workdir / "config.json").read_text())
    saved["train"]["task"] = task
    (scorer / "config.json").write_text(json.dumps(saved))
    with pytest.raises(ValueError, match=f"scorer \\({task} run\\)"):
      Evaluated(f"run:{scorer}")
  with pytest.raises(ValueError, match="run:WORKDIR"):
    Evaluated("checkpoint:somewhere")


def test_the_harness_tasks_run_on_a_run_model(trained_run):
  from llm.eval.run import run_task
  workdir, _, _ = trained_run
  model = Evaluated(f"run:{workdir}")
  fim = run_task(model, "fim", limit=2, new_tokens=4, bpb_chars=2000)
  assert fim["cases"] == 2 and 0.0 <= fim["exact_match"] <= 1.0  # our tokenizer has FIM tokens
  assert run_task(model, "gsm8k", limit=3, new_tokens=4, bpb_chars=0)["problems"] == 3
  humaneval = run_task(model, "humaneval", limit=3, new_tokens=4, bpb_chars=0)
  assert humaneval["problems"] == 3 and humaneval["pass_at_1"] == 0.0
  bpb = run_task(model, "bpb", limit=2, new_tokens=4, bpb_chars=20_000)
  # An untrained-size model on random rows: near-uniform over 2,000 pieces is about 11 bits a
  # token; per byte it must land between 0 and that.
  for source in ("shakespeare", "python_stdlib"):
    assert 0.0 < bpb[source]["bits_per_byte"] < 11.0 and bpb[source]["bytes"] > 0
