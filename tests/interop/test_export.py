"""`llm.interop.export`: a training run out as GGUF and as an HF folder, same model."""

import shutil

import numpy as np
import pytest

from llm.interop.run_export import export_run
from llm.interop.gguf_import import load_gguf
from llm.interop.hf_checkpoint import load_hf_checkpoint
from llm.train.lm_task import LMTask
from llm.train.loop import train
from tests.conftest import micro_config, random_rows
from tests.interop.helpers import our_logits

pytest.importorskip("gguf")


def test_a_run_exports_to_gguf_and_hf_with_its_model_and_tokenizer(tmp_path, small_tokenizer):
  (tmp_path / "data").mkdir()
  shutil.copy(small_tokenizer.path, tmp_path / "data" / "tokenizer.model")
  config = micro_config(vocab_size=small_tokenizer.vocab_size)
  config.train.steps, config.checkpoint.every_steps = 3, 3
  result = train(config, LMTask(config, random_rows()), str(tmp_path / "pretrain"))
  trained = result["state"]["params"]
  gguf_path, hf_dir = str(tmp_path / "run.gguf"), str(tmp_path / "hf")
  assert export_run(str(tmp_path / "pretrain"), gguf_path=gguf_path, hf_dir=hf_dir) == [
      gguf_path, hf_dir]
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
