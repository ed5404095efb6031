"""GPTQ on llama.cpp's Q4_0 grid, written as GGUF: our importer and transformers read
back exactly the weights our quantized model computes with."""

import numpy as np
import pytest
from flax import nnx

from llm.model.factory import build_model
from llm.quant.grid import Grid
from llm.quant.model_quant import QuantSettings, quantize_model
from llm.quant.gguf_out import save_quantized_gguf
from tests.conftest import micro_config
from tests.interop.helpers import hf_logits, our_logits

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


def test_a_gptq_q4_0_gguf_gives_our_quantized_logits(tmp_path, small_tokenizer):
  from llm.interop.gguf_import import load_gguf
  config = micro_config(vocab_size=small_tokenizer.vocab_size)
  config.model.compute_dtype = "float32"
  model = build_model(config.model, seed=6)
  graphdef = nnx.split(model, nnx.Param)[0]
  tokens = np.random.default_rng(7).integers(0, config.model.vocab_size, (8, 16))
  for kind in ("q4_0",):  # Q8_0's blocks: tests/quant/test_gptq.py
    settings = QuantSettings("gptq", Grid.llama_cpp(kind))
    quantized, _ = quantize_model(model, tokens, settings)
    path = save_quantized_gguf(str(tmp_path / f"{kind}.gguf"), config.model, quantized,
                               small_tokenizer, kind)
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    assert types["blk.0.attn_q.weight"] == kind.upper()
    assert types["blk.1.ffn_down.weight"] == kind.upper()
    assert types["token_embd.weight"] == "F32"
    ours = np.asarray(nnx.merge(graphdef, quantized)(tokens))
    loaded, back, _ = load_gguf(path)
    np.testing.assert_allclose(our_logits(loaded.model, back, tokens), ours, atol=1e-5)
    hf = transformers.AutoModelForCausalLM.from_pretrained(
        str(tmp_path), gguf_file=f"{kind}.gguf", dtype=torch.float32).eval()
    np.testing.assert_allclose(hf_logits(hf, tokens), ours, atol=6e-5)
