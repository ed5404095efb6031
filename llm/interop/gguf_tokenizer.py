"""The tokenizer inside a GGUF file, rebuilt with the `tokenizers` library behind our
Tokenizer interface.

Byte-level BPE vocabularies (`tokenizer.ggml.model` = gpt2: GPT-2, SmolLM2, Qwen2, Llama 3)
are supported: the token strings and merges give a BPE model; the pre-tokenizer follows
`tokenizer.ggml.pre` (llama.cpp's name for the split rules); control tokens (type 3) become
special tokens that text never produces. SentencePiece vocabularies (`llama`) are not yet.
"""

from llm.tokenizer.hf_tokenizer import HFTokenizer

CONTROL, USER_DEFINED = 3, 4
# llama.cpp pre-tokenizer names -> whether single digits are split off before the GPT-2 rules.
_PRE_TOKENIZERS = {"default": False, "gpt2": False, "smollm": True, "starcoder": True,
                   "refact": True, "qwen2": False}


def _field(reader, key, default=None):
  field = reader.fields.get(key)
  return default if field is None else field.contents()


def tokenizer_from_gguf(reader) -> HFTokenizer:
  from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers
  kind = _field(reader, "tokenizer.ggml.model")
  if kind != "gpt2":
    raise ValueError(f"GGUF tokenizer model {kind!r} is not supported yet; byte-level BPE "
                     "(gpt2) is. Load the model's tokenizer.json with HFTokenizer instead.")
  pre = _field(reader, "tokenizer.ggml.pre", "default")
  if pre not in _PRE_TOKENIZERS:
    raise ValueError(f"GGUF pre-tokenizer {pre!r} is not supported; known: "
                     f"{sorted(_PRE_TOKENIZERS)}")
  tokens = _field(reader, "tokenizer.ggml.tokens")
  types = _field(reader, "tokenizer.ggml.token_type", [1] * len(tokens))
  merges = [tuple(m.split(" ", 1)) for m in _field(reader, "tokenizer.ggml.merges", [])]
  tok = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges,
                             fuse_unk=False, byte_fallback=False))
  byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
  tok.pre_tokenizer = (pre_tokenizers.Sequence([pre_tokenizers.Digits(individual_digits=True),
                                                byte_level])
                       if _PRE_TOKENIZERS[pre] else byte_level)
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
