"""Writing GGUF files the way llama.cpp's convert_hf_to_gguf does, from transformers models,
and decoding ggml blocks naively: the independent side of the GGUF import tests."""

import numpy as np

MERGES = ["h e", "Ġ t", "Ġt he", "l l", "o r", "Ġ w", "Ġw or", "l d", "e ll"]
CONTROL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def byte_to_unicode() -> dict:
  """GPT-2's printable spelling of the 256 bytes (written out here, independently of the code
  under test)."""
  printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
               + list(range(ord("®"), ord("ÿ") + 1)))
  chars, extra = {}, 0
  for b in range(256):
    if b in printable:
      chars[b] = chr(b)
    else:
      chars[b] = chr(256 + extra)
      extra += 1
  return chars


def vocabulary() -> tuple[list[str], list[int]]:
  """(tokens, token types): the 256 byte tokens, one token per merge, the control tokens."""
  tokens = [byte_to_unicode()[b] for b in range(256)]
  tokens += ["".join(m.split(" ")) for m in MERGES]
  types = [1] * len(tokens) + [3] * len(CONTROL)
  return tokens + CONTROL, types


def llama_permute(w: np.ndarray, n_head: int) -> np.ndarray:
  """What llama.cpp's convert_hf_to_gguf does to llama query and key weights."""
  return (w.reshape(n_head, 2, w.shape[0] // n_head // 2, *w.shape[1:])
          .swapaxes(1, 2).reshape(w.shape))


def layer_weights(sd: dict, i: int, cfg) -> dict:
  """GGUF name (without blk.i.) -> [out, in] array, for a llama or Mixtral layer."""
  p = f"model.layers.{i}."
  w = {"attn_norm": sd[p + "input_layernorm.weight"],
       "ffn_norm": sd[p + "post_attention_layernorm.weight"],
       "attn_q": llama_permute(sd[p + "self_attn.q_proj.weight"], cfg.num_attention_heads),
       "attn_k": llama_permute(sd[p + "self_attn.k_proj.weight"], cfg.num_key_value_heads),
       "attn_v": sd[p + "self_attn.v_proj.weight"],
       "attn_output": sd[p + "self_attn.o_proj.weight"]}
  if p + "mlp.experts.gate_up_proj" in sd:  # transformers keeps experts fused: [E, 2F, D]
    gate_up, ff = sd[p + "mlp.experts.gate_up_proj"], cfg.intermediate_size
    w.update(ffn_gate_inp=sd[p + "mlp.gate.weight"], ffn_gate_exps=gate_up[:, :ff],
             ffn_up_exps=gate_up[:, ff:], ffn_down_exps=sd[p + "mlp.experts.down_proj"])
  else:
    w.update(ffn_gate=sd[p + "mlp.gate_proj.weight"], ffn_up=sd[p + "mlp.up_proj.weight"],
             ffn_down=sd[p + "mlp.down_proj.weight"])
  return w


def write_gguf(path, model, tokens, types, tensor_types: dict, extra: dict | None = None) -> None:
  """A llama-architecture GGUF file (dense, or Mixtral with expert_count), metadata and
  tensors as convert_hf_to_gguf writes them; `tensor_types` maps layer tensor names to a
  quantization type (F32 otherwise); `extra` adds float32 tensors by name."""
  import gguf
  cfg = model.config
  head_dim = cfg.hidden_size // cfg.num_attention_heads
  writer = gguf.GGUFWriter(str(path), "llama")
  writer.add_name("tiny")
  writer.add_block_count(cfg.num_hidden_layers)
  writer.add_context_length(cfg.max_position_embeddings)
  writer.add_embedding_length(cfg.hidden_size)
  writer.add_feed_forward_length(cfg.intermediate_size)
  writer.add_head_count(cfg.num_attention_heads)
  writer.add_head_count_kv(cfg.num_key_value_heads)
  writer.add_rope_freq_base(cfg.rope_parameters["rope_theta"])
  writer.add_layer_norm_rms_eps(cfg.rms_norm_eps)
  writer.add_rope_dimension_count(head_dim)
  if getattr(cfg, "num_local_experts", 0):
    writer.add_expert_count(cfg.num_local_experts)
    writer.add_expert_used_count(cfg.num_experts_per_tok)
  writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
  writer.add_tokenizer_model("gpt2")
  writer.add_tokenizer_pre("default")
  writer.add_token_list(tokens)
  writer.add_token_types(types)
  writer.add_token_merges(MERGES)
  writer.add_bos_token_id(tokens.index("<|im_start|>"))
  writer.add_eos_token_id(tokens.index("<|im_end|>"))

  def add(name, w, kind="F32"):
    w = np.ascontiguousarray(w, np.float32)  # [.., out, in]: the reader reports [in, out, ..]
    if kind == "F32":
      writer.add_tensor(name, w)
    else:
      qtype = gguf.GGMLQuantizationType[kind]
      writer.add_tensor(name, gguf.quants.quantize(w, qtype), raw_dtype=qtype)

  sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
  add("token_embd.weight", sd["model.embed_tokens.weight"])
  add("output_norm.weight", sd["model.norm.weight"])
  add("output.weight", sd["lm_head.weight"])
  for name, value in (extra or {}).items():
    add(name, value)
  for i in range(cfg.num_hidden_layers):
    for name, value in layer_weights(sd, i, cfg).items():
      add(f"blk.{i}.{name}.weight", value, tensor_types.get(name, "F32"))
  writer.write_header_to_file()
  writer.write_kv_data_to_file()
  writer.write_tensors_to_file()
  writer.close()


def naive_decode(raw: np.ndarray, kind: str, shape) -> np.ndarray:
  """The ggml block formats, decoded block by block and value by value, as ggml-quants.c
  writes them."""
  raw = np.asarray(raw).reshape(-1).view(np.uint8)
  if kind == "F16":
    return raw.view("<f2").astype(np.float32).reshape(shape)
  decode, block_bytes = _BLOCK_DECODERS[kind]
  out = []
  for start in range(0, raw.size, block_bytes):
    out += decode(raw[start:start + block_bytes].tobytes())
  return np.asarray(out, np.float32).reshape(shape)


def _f16(b: bytes) -> float:
  return float(np.frombuffer(b, "<f2")[0])


def _q8_0(block: bytes) -> list:
  d, q = _f16(block[0:2]), np.frombuffer(block[2:34], np.int8)
  return [float(q[j]) * d for j in range(32)]


def _q4(block: bytes, with_min: bool) -> list:
  d = _f16(block[0:2])
  m = _f16(block[2:4]) if with_min else 0.0
  nibbles = block[4:20] if with_min else block[2:18]
  out = []
  for j in range(32):
    q = nibbles[j] & 0x0F if j < 16 else nibbles[j - 16] >> 4
    out.append(q * d + m if with_min else (q - 8) * d)
  return out


def _q5_0(block: bytes) -> list:
  d, high = _f16(block[0:2]), int.from_bytes(block[2:6], "little")
  qs, out = block[6:22], [0.0] * 32
  for j in range(16):
    out[j] = (((qs[j] & 0x0F) | (((high >> j) << 4) & 0x10)) - 16) * d
    out[j + 16] = (((qs[j] >> 4) | ((high >> (j + 12)) & 0x10)) - 16) * d
  return out


def _scale_min_k4(j: int, scales: bytes) -> tuple[int, int]:
  if j < 4:
    return scales[j] & 63, scales[j + 4] & 63
  return ((scales[j + 4] & 0x0F) | ((scales[j - 4] >> 6) << 4),
          (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4))


def _q4_k(block: bytes) -> list:
  d, dmin, scales, qs = _f16(block[0:2]), _f16(block[2:4]), block[4:16], block[16:144]
  out = []
  for half in range(4):  # 64 values: 32 low nibbles, then 32 high nibbles
    q = qs[32 * half:32 * half + 32]
    for sub, shift in ((2 * half, 0), (2 * half + 1, 4)):
      scale, minimum = _scale_min_k4(sub, scales)
      out += [d * scale * ((q[i] >> shift) & 0x0F) - dmin * minimum for i in range(32)]
  return out


def _q5_k(block: bytes) -> list:
  d, dmin, scales = _f16(block[0:2]), _f16(block[2:4]), block[4:16]
  qh, qs = block[16:48], block[48:176]
  out = []
  for half in range(4):  # like Q4_K, plus one high bit per value from qh
    q = qs[32 * half:32 * half + 32]
    for sub, shift in ((2 * half, 0), (2 * half + 1, 4)):
      scale, minimum = _scale_min_k4(sub, scales)
      bit = 1 << sub
      out += [d * scale * (((q[i] >> shift) & 0x0F) + (16 if qh[i] & bit else 0))
              - dmin * minimum for i in range(32)]
  return out


def _q6_k(block: bytes) -> list:
  ql, qh = block[0:128], block[128:192]
  scales, d = np.frombuffer(block[192:208], np.int8), _f16(block[208:210])
  out = [0.0] * 256
  for n in range(2):  # two halves of 128 values
    low, high, sc, y = ql[64 * n:], qh[32 * n:], scales[8 * n:], 128 * n
    for i in range(32):
      s = i // 16
      values = (((low[i] & 0x0F) | (((high[i] >> 0) & 3) << 4)) - 32,
                ((low[i + 32] & 0x0F) | (((high[i] >> 2) & 3) << 4)) - 32,
                ((low[i] >> 4) | (((high[i] >> 4) & 3) << 4)) - 32,
                ((low[i + 32] >> 4) | (((high[i] >> 6) & 3) << 4)) - 32)
      for k, q in enumerate(values):
        out[y + i + 32 * k] = d * float(sc[s + 2 * k]) * q
  return out


_BLOCK_DECODERS = {"Q8_0": (_q8_0, 34), "Q4_0": (lambda b: _q4(b, False), 18),
                   "Q4_1": (lambda b: _q4(b, True), 20), "Q5_0": (_q5_0, 22),
                   "Q4_K": (_q4_k, 144), "Q5_K": (_q5_k, 176), "Q6_K": (_q6_k, 210)}


def random_k_blocks(kind: str, blocks: int, seed: int = 0) -> np.ndarray:
  """Random bytes in `kind`'s block layout with finite, moderate f16 scales (K-quants cannot
  be quantized from Python)."""
  rng = np.random.default_rng(seed)
  size = _BLOCK_DECODERS[kind][1]
  raw = rng.integers(0, 256, size=(blocks, size), dtype=np.uint8)
  scale_at = {"Q4_K": (0, 2), "Q5_K": (0, 2), "Q6_K": (208,)}[kind]
  for at in scale_at:
    raw[:, at:at + 2] = np.frombuffer(
        rng.uniform(1e-3, 1e-2, blocks).astype("<f2").tobytes(), np.uint8).reshape(blocks, 2)
  return raw


def rounded(w: np.ndarray, kind: str) -> np.ndarray:
  """w after quantizing to `kind` and decoding naively."""
  import gguf
  return naive_decode(gguf.quants.quantize(w, gguf.GGMLQuantizationType[kind]), kind, w.shape)
