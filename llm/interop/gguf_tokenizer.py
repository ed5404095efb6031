"""The tokenizer inside a GGUF file, rebuilt behind our Tokenizer interface.

- Byte-level BPE (`tokenizer.ggml.model` = gpt2: GPT-2, SmolLM2, Qwen2, Llama 3), with the
  `tokenizers` library: the token strings and merges give a BPE model; the pre-tokenizer
  follows `tokenizer.ggml.pre` (llama.cpp's name for the split rules: GPT-2's, with single
  digits for smollm/starcoder, or Llama 3's and Qwen2's own regexes).
- SentencePiece BPE (`llama`: Llama 1/2, Mistral, TinyLlama), with `sentencepiece` itself: the
  pieces, scores and piece types (llama.cpp keeps SentencePiece's numbering) are put back into
  a SentencePiece model, so merges follow the scores and unknown bytes fall back to <0xNN>.

Either way control tokens (type 3) are special tokens that text never produces; user-defined
ones (type 4) are matched in text, as in the original tokenizers.
"""

from llm.tokenizer.hf_tokenizer import HFTokenizer

CONTROL, USER_DEFINED, BYTE = 3, 4, 6
SENTENCEPIECE_KEY = "llm.sentencepiece_model"  # written by gguf_export.save_gguf
# llama.cpp pre-tokenizer names (`tokenizer.ggml.pre`) -> how text is split before the merges:
# the GPT-2 rules, optionally after splitting off single digits, or a model's own split regex.
_GPT2_RULES = {"default": False, "gpt2": False, "smollm": True, "starcoder": True,
               "refact": True}
_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = _LLAMA3_SPLIT.replace(r"\p{N}{1,3}", r"\p{N}")  # single digits
_SPLITS = {"llama-bpe": _LLAMA3_SPLIT, "llama3": _LLAMA3_SPLIT, "llama-v3": _LLAMA3_SPLIT,
           "smaug-bpe": _LLAMA3_SPLIT, "dbrx": _LLAMA3_SPLIT, "qwen2": _QWEN2_SPLIT,
           "deepseek-r1-qwen": _QWEN2_SPLIT}


def _field(reader, key, default=None):
  field = reader.fields.get(key)
  return default if field is None else field.contents()


def tokenizer_from_gguf(reader) -> HFTokenizer:
  kind = _field(reader, "tokenizer.ggml.model")
  if kind == "llama":
    return sentencepiece_from_gguf(reader)
  if kind != "gpt2":
    raise ValueError(f"GGUF tokenizer model {kind!r} is not supported; byte-level BPE (gpt2) "
                     "and SentencePiece (llama) are. Load the model's tokenizer.json with "
                     "HFTokenizer instead.")
  return _byte_level_bpe(reader)


def _byte_level_bpe(reader) -> HFTokenizer:
  from tokenizers import AddedToken, Tokenizer, decoders, models
  pre = _field(reader, "tokenizer.ggml.pre", "default")
  if pre not in _GPT2_RULES and pre not in _SPLITS:
    raise ValueError(f"GGUF pre-tokenizer {pre!r} is not supported; known: "
                     f"{sorted(_GPT2_RULES) + sorted(_SPLITS)}")
  tokens = _field(reader, "tokenizer.ggml.tokens")
  types = _field(reader, "tokenizer.ggml.token_type", [1] * len(tokens))
  merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges", [])]
  tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                             fuse_unk=False, byte_fallback=False))
  tok.pre_tokenizer = _pre_tokenizer(pre)
  tok.decoder = decoders.ByteLevel()
  tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                          for t, k in zip(tokens, types) if k == CONTROL])
  tok.add_tokens([AddedToken(t, special=False, normalized=False)
                  for t, k in zip(tokens, types) if k == USER_DEFINED])
  names = {}
  for role in ("bos", "eos", "padding"):
    index = _field(reader, f"tokenizer.ggml.{role}_token_id")
    if index is not None:
      names[role] = tokens[int(index)]
  return HFTokenizer(f"{reader.data.filename}#tokenizer", bos=names.get("bos"),
                     eos=names.get("eos"), pad=names.get("padding"), tokenizer=tok)


def _pre_tokenizer(pre: str):
  from tokenizers import Regex, pre_tokenizers
  if pre in _SPLITS:
    return pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_SPLITS[pre]), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
  byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  if _GPT2_RULES[pre]:
    return pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True), byte_level])
  return byte_level


def sentencepiece_from_gguf(reader):
  """A `llama` vocabulary as a SentencePiece BPE model with its own special ids."""
  from sentencepiece import sentencepiece_model_pb2 as sp_model
  from llm.tokenizer.sentencepiece_tokenizer import SentencePieceTokenizer
  tokens = _field(reader, "tokenizer.ggml.tokens")
  scores = _field(reader, "tokenizer.ggml.scores", [0.0] * len(tokens))
  ids = {role: _field(reader, f"tokenizer.ggml.{role}_token_id")
         for role in ("unknown", "bos", "eos", "padding")}
  whole = _field(reader, SENTENCEPIECE_KEY)  # our own exports carry the exact model
  if whole is not None:
    return SentencePieceTokenizer.from_model_proto(
        bytes(whole), f"{reader.data.filename}#tokenizer", unk_id=int(ids["unknown"]),
        bos_id=int(ids["bos"]), eos_id=int(ids["eos"]), pad_id=int(ids["padding"]))
  types = _field(reader, "tokenizer.ggml.token_type", [1] * len(tokens))
  proto = sp_model.ModelProto()
  proto.trainer_spec.model_type = sp_model.TrainerSpec.BPE
  proto.trainer_spec.byte_fallback = BYTE in types
  proto.normalizer_spec.name = "identity"
  proto.normalizer_spec.add_dummy_prefix = bool(
      _field(reader, "tokenizer.ggml.add_space_prefix", True))
  proto.normalizer_spec.remove_extra_whitespaces = False
  proto.normalizer_spec.escape_whitespaces = True
  for token, score, kind in zip(tokens, scores, types):
    proto.pieces.add(piece=token, score=float(score), type=int(kind))
  unk = ids["unknown"] if ids["unknown"] is not None else list(types).index(2)
  for role, piece in (("bos", "bos_piece"), ("eos", "eos_piece"), ("unknown", "unk_piece")):
    if ids[role] is not None:  # SentencePiece looks its bos/eos ids up by these names
      setattr(proto.trainer_spec, piece, tokens[int(ids[role])])
  eos = int(ids["eos"]) if ids["eos"] is not None else unk
  return SentencePieceTokenizer.from_model_proto(
      proto.SerializeToString(), f"{reader.data.filename}#tokenizer", unk_id=int(unk),
      bos_id=int(ids["bos"]) if ids["bos"] is not None else eos, eos_id=eos,
      pad_id=int(ids["padding"]) if ids["padding"] is not None else eos)
