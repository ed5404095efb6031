"""Our models out as GGUF: read back by our importer and by transformers with the same
logits, with our SentencePiece tokenizer intact."""

import jax
import numpy as np
import pytest
from flax import nnx

from llm.interop.gguf_export import save_gguf
from llm.interop.gguf_import import load_gguf
from llm.model import build_model
from tests.conftest import micro_config
from tests.interop.helpers import hf_logits, our_logits

gguf = pytest.importorskip("gguf")
torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TEXTS = ["def f(x):\n\treturn x  # two  spaces\n", "To be, or not to be", "中文 42 ☃",
         "   leading and trailing   "]


def random_params(model_config, seed=0) -> dict:
  """Weights large enough for the logits to mean something (norm scales around 1)."""
  params = nnx.to_pure_dict(nnx.split(build_model(model_config), nnx.Param)[1])
  rng = np.random.default_rng(seed)

  def draw(path, x):
    noise = rng.normal(0.0, 0.3, x.shape).astype(np.float32)
    return noise + 1.0 if "scale" in jax.tree_util.keystr(path) else noise
  return jax.tree_util.tree_map_with_path(draw, params)


def model_config(tokenizer, **overrides):
  model = micro_config(vocab_size=tokenizer.vocab_size, **overrides).model
  model.compute_dtype = "float32"
  return model


@pytest.mark.parametrize("kind", ["dense", "moe", "llama3_rope"])
def test_an_exported_gguf_comes_back_with_the_same_logits_and_tokenizer(tmp_path, kind,
                                                                        small_tokenizer):
  model = model_config(small_tokenizer)
  if kind == "moe":
    model.moe.num_experts, model.moe.top_k = 4, 2
  if kind == "llama3_rope":  # head_dim 64: several frequencies inside the wavelength band
    model.num_heads, model.num_kv_heads, model.head_dim, model.max_seq_len = 2, 1, 64, 128
    model.rope.update(theta=500000.0, scaling="llama3", factor=8.0, low_freq_factor=1.0,
                  high_freq_factor=4.0, original_max_seq_len=64)
  params = random_params(model)
  path = save_gguf(str(tmp_path / "ours.gguf"), model, params, small_tokenizer)
  loaded, back, tokenizer = load_gguf(path)
  tokens = np.random.default_rng(1).integers(0, model.vocab_size, size=(2, model.max_seq_len))
  ours = our_logits(model, params, tokens)
  assert np.abs(ours).max() > 1.0
  # llama3: the band is refitted from float32 factors, so frequencies move in the last bits
  np.testing.assert_allclose(our_logits(loaded.model, back, tokens), ours, rtol=0,
                             atol=1e-4 if kind == "llama3_rope" else 1e-5)
  if kind == "llama3_rope":
    rope = loaded.model.rope
    assert (rope.scaling, rope.factor) == ("llama3", 8.0)
    assert abs(rope.low_freq_factor / rope.high_freq_factor - 0.25) < 1e-6  # the same band
  for text in TEXTS:
    assert tokenizer.encode(text) == small_tokenizer.encode(text)
  assert tokenizer.special_tokens() == small_tokenizer.special_tokens()
  assert (tokenizer.bos_id, tokenizer.eos_id) == (small_tokenizer.bos_id, small_tokenizer.eos_id)


def test_transformers_loads_an_exported_gguf_with_the_same_logits(tmp_path, small_tokenizer):
  model = model_config(small_tokenizer)
  params = random_params(model, seed=2)
  save_gguf(str(tmp_path / "ours.gguf"), model, params, small_tokenizer)
  hf = transformers.AutoModelForCausalLM.from_pretrained(
      str(tmp_path), gguf_file="ours.gguf", dtype=torch.float32).eval()
  tokens = np.random.default_rng(3).integers(0, model.vocab_size, size=(2, 24))
  ours, theirs = our_logits(model, params, tokens), hf_logits(hf, tokens)
  print(f"\nexported GGUF in transformers: max|diff| {np.abs(ours - theirs).max():.2e}, "
        f"max|logit| {np.abs(ours).max():.3g}")
  np.testing.assert_allclose(theirs, ours, atol=6e-5, rtol=0)  # README's bound; measured 2.7e-5


def test_quantized_exports_store_quantized_matrices(tmp_path, small_tokenizer):
  model = model_config(small_tokenizer)
  params = random_params(model, seed=4)
  tokens = np.random.default_rng(5).integers(0, model.vocab_size, size=(2, 16))
  ours = our_logits(model, params, tokens)
  for kind, bound in (("F16", 0.01), ("Q8_0", 0.1)):  # random weights, std 0.3: chaotic
    path = save_gguf(str(tmp_path / f"{kind}.gguf"), model, params, small_tokenizer,
                     tensor_type=kind)
    types = {t.name: t.tensor_type.name for t in gguf.GGUFReader(path).tensors}
    assert types["blk.0.attn_q.weight"] == kind and types["blk.0.attn_norm.weight"] == "F32"
    loaded, back, _ = load_gguf(path)
    err = np.abs(our_logits(loaded.model, back, tokens) - ours).max() / np.abs(ours).max()
    assert 0 < err < bound, (kind, err)


def test_what_llama_cpp_cannot_hold_is_refused(tmp_path, small_tokenizer):
  model = model_config(small_tokenizer)
  params = random_params(model)
  with pytest.raises(ValueError, match="tensor_type"):
    save_gguf(str(tmp_path / "x.gguf"), model, params, tensor_type="Q4_K")
  model.rope.update(scaling="ntk", factor=2.0)
  with pytest.raises(ValueError, match="NTK"):
    save_gguf(str(tmp_path / "x.gguf"), model, params)
  assert not list(tmp_path.iterdir())  # nothing half-written
