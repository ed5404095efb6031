"""`llm.interop.export`: a training run out as GGUF and as an HF folder, same model."""


import numpy as np
import pytest

from llm.interop.run_export import export_run
from llm.interop.gguf_import import load_gguf
from llm.interop.hf_checkpoint import load_hf_checkpoint
from tests.conftest import micro_lifecycle_run
from tests.interop.helpers import hf_logits, our_logits

pytest.importorskip("gguf")


@pytest.fixture(scope="module")
def exported(tmp_path_factory, small_tokenizer):
  """A 3-step pretraining run, exported: (run dir, config, trained params, gguf, hf dir)."""
  tmp_path = tmp_path_factory.mktemp("export")
  task, result = micro_lifecycle_run(tmp_path, small_tokenizer, 3)
  config = task.config
  gguf_path, hf_dir = str(tmp_path / "run.gguf"), str(tmp_path / "hf")
  assert export_run(str(tmp_path / "pretrain"), gguf_path=gguf_path, hf_dir=hf_dir) == [
      gguf_path, hf_dir]
  return tmp_path, config, result["state"]["params"], gguf_path, hf_dir


def test_a_run_exports_to_gguf_and_hf_with_its_model_and_tokenizer(exported, small_tokenizer):
  tmp_path, config, trained, gguf_path, hf_dir = exported
  tokens = np.random.default_rng(0).integers(0, small_tokenizer.vocab_size, size=(2, 16))
  expected = our_logits(config.model, trained, tokens)
  gguf_config, gguf_params, tokenizer = load_gguf(gguf_path)
  hf_config, hf_params, _ = load_hf_checkpoint(hf_dir)
  for model, params in ((gguf_config.model, gguf_params), (hf_config.model, hf_params)):
    np.testing.assert_allclose(our_logits(model, params, tokens), expected, atol=1e-5, rtol=0)
  assert tokenizer.encode("def f(x):\n\treturn x") == small_tokenizer.encode(
      "def f(x):\n\treturn x")
  assert (tmp_path / "hf" / "tokenizer.model").read_bytes() == (
      tmp_path / "data" / "tokenizer.model").read_bytes()
  with pytest.raises(ValueError, match="nothing to export"):
    export_run(str(tmp_path / "pretrain"))


def test_an_exported_run_runs_in_transformers_with_its_logits(exported, small_tokenizer):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  _, config, trained, _, hf_dir = exported
  hf = transformers.AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()
  tokens = np.random.default_rng(0).integers(0, small_tokenizer.vocab_size, size=(2, 16))
  ours, theirs = our_logits(config.model, trained, tokens), hf_logits(hf, tokens)
  print(f"\nexported run in transformers: max|diff| {np.abs(ours - theirs).max():.2e}, "
        f"max|logit| {np.abs(ours).max():.3g}")
  assert np.abs(ours).max() > 0.5  # not all zeros
  np.testing.assert_allclose(theirs, ours, atol=1e-5, rtol=0)
