"""Curating a corpus: read sources -> per-document stages (steps.py) -> model quality -> dedup
-> mixture -> shards.

Per-document stages run in a process pool or on Ray (`config.executor`, `config.workers`); dedup
and mixture see the whole kept corpus. Output: DIR/shard-*.jsonl.gz, DIR/stats.json,
DIR/report.md.
"""

import collections
import functools
import logging
import os
import time
from typing import Iterable, Iterator

import numpy as np

from llm.data.curation import readers
from llm.data.curation.dedup import (MinHashConfig, band_keys, bucket_records,
                                     document_fingerprint, estimated_jaccard,
                                     exact_duplicates_from_keys, keepers_from_pairs,
                                     pairs_from_codes, pairs_in_buckets)
from llm.data.curation.executors import executor_session, ordered_map
from llm.data.curation.mixture import add_replay, sample_mixture
from llm.data.curation.ngram_quality import CharNgramModel, perplexity_cut
from llm.data.curation.shards import write_shards
from llm.data.curation.sources import load_documents
from llm.data.curation.stats import CurationStats, write_report
from llm.data.curation.steps import StageSettings, check_rules, process_document

_READERS = {"jsonl": readers.read_jsonl, "text": readers.read_text_folder,
            "parquet": readers.read_parquet, "warc": readers.read_warc,
            "tfds": readers.read_tfds}


def read_units(config) -> Iterator[tuple]:
  """What workers get, in output order: each packaged source, loaded here, as
  `config.read_shards` slices of documents; each `config.inputs` file ("kind:path"), which
  the worker reads itself. Units do not depend on the number of workers, so neither does the
  output; at scale, inputs come as many files."""
  inputs = [spec.partition(":")[::2] for spec in config.inputs]
  for spec, (kind, _) in zip(config.inputs, inputs):  # fail here, before any work
    if kind not in _READERS:
      raise ValueError(f"config.inputs entry {spec!r}: unknown reader {kind!r}; use one of "
                       f"{sorted(_READERS)} as 'kind:path'")
  return _units(config, inputs)


def _units(config, inputs: list[tuple[str, str]]) -> Iterator[tuple]:
  for name, max_chars in config.sources.items():
    docs = load_documents(name, max_chars)
    size = max(1, -(-len(docs) // config.read_shards))
    for start in range(0, len(docs), size):
      yield ("documents", name, docs[start:start + size])
  for kind, path in inputs:
    yield ("file", kind, path)


def read_unit(unit: tuple, skipped: collections.Counter) -> tuple[str, Iterable[dict]]:
  """(source name, documents) of one unit; unreadable records are counted in `skipped`."""
  origin, first, second = unit
  if origin == "documents":
    return first, second
  kind, path = first, second
  # "crawl.warc.gz" -> "crawl"; "tfds:wiki40b/en:train" -> "wiki40b"
  if kind == "tfds":
    source = path.split("/")[0].split(":")[0]
  else:
    source = os.path.basename(path).split(".")[0]
  return source, _READERS[kind](path, source, skipped)


def _curate_unit(unit: tuple, settings: StageSettings, minhash: MinHashConfig | None):
  """Reads one unit and runs the per-document stages on it, in a worker: (source, documents
  read, unreadable records by reason, [(document, reason, events, fingerprint), ...])."""
  skipped = collections.Counter()
  source, docs = read_unit(unit, skipped)
  results = [_process_and_fingerprint(doc, settings, minhash)
             for doc in docs]
  return source, len(results), skipped, results


def curate(config, out_dir: str) -> dict:
  """Runs the whole curation; returns the stats dict (also in out_dir/stats.json)."""
  check_rules(config)
  os.makedirs(out_dir, exist_ok=True)
  with executor_session(config.executor, config.workers, config.ray_address):
    return _curate(config, out_dir)


def _curate(config, out_dir: str) -> dict:
  stats, kept, fingerprints, started = CurationStats(), [], {}, time.perf_counter()
  step = functools.partial(_curate_unit, settings=StageSettings.from_config(config),
                           minhash=_minhash_config(config) if config.dedup.near else None)
  units, processed = read_units(config), 0
  with ordered_map(step, units, config.executor, config.workers, 1,
                   config.ray_address) as unit_results:
    for i, (source, read, skipped, results) in enumerate(unit_results, 1):
      stats.read[source] += read
      stats.removed.update(skipped)
      for doc, reason, events, fingerprint in results:
        stats.events.update(events)
        if reason:
          stats.drop(doc, reason)
        else:
          kept.append(doc)
          fingerprints[doc["id"]] = fingerprint
      processed += read
      logging.info("read unit %d (%s): %d documents processed, %d kept (%.0f docs/s)", i,
                   source, processed, len(kept), processed / (time.perf_counter() - started))
  kept = _model_quality(kept, config, stats)
  stats.seconds["per_document_stages"] = time.perf_counter() - started
  kept = _dedup(kept, fingerprints, config, stats)
  for doc in kept:
    stats.keep(doc)
  m = config.mixture
  mixture = sample_mixture(kept, dict(m.weights), m.token_budget, m.temperature, m.seed)
  if m.replay_source and m.replay_share:
    mixture = add_replay(mixture, load_documents(m.replay_source, m.replay_chars),
                         m.replay_share, m.seed)
  shards = write_shards(mixture, out_dir, config.docs_per_shard)
  result = stats.as_dict()
  result["mixture"] = {"documents": len(mixture), "shards": len(shards),
                       "documents_by_source": dict(collections.Counter(
                           d["source"] for d in mixture))}
  result["seconds"] = time.perf_counter() - started
  write_report(result, out_dir)
  return result


def _model_quality(docs: list[dict], config, stats: CurationStats) -> list[dict]:
  """Drops the worst-scoring documents of each kind in config.model_quality.kinds."""
  mq = config.model_quality
  kinds = config.kinds.to_dict()
  dropped = {}
  for kind in mq.kinds:
    group = [d for d in docs if kinds.get(d["source"], "web") == kind]
    if not group:
      continue
    reference = [d["text"] for d in load_documents(mq.reference_source, mq.reference_chars)]
    model = CharNgramModel(reference, order=mq.order)
    dropped.update(perplexity_cut(group, model, mq.keep_percentile))
  for doc in docs:
    if doc["id"] in dropped:
      stats.drop(doc, "model_quality:perplexity")
  return [doc for doc in docs if doc["id"] not in dropped]


def _minhash_config(config) -> MinHashConfig:
  d = config.dedup
  return MinHashConfig(ngram=d.ngram, num_perm=d.bands * d.rows, bands=d.bands, rows=d.rows,
                       threshold=d.threshold, seed=d.seed)


def _process_and_fingerprint(doc: dict, config, minhash: MinHashConfig | None):
  """The per-document stages, then the document's dedup fingerprint if it was kept."""
  doc, reason, events = process_document(doc, config)
  if reason:  # the text of a dropped document is not needed again: do not send it back
    return dict(doc, text=""), reason, events, None
  return doc, reason, events, document_fingerprint(doc["text"], minhash)


def _dedup(docs: list[dict], fingerprints: dict, config, stats: CurationStats) -> list[dict]:
  """Exact, then near dedup from the fingerprints computed beside the per-document stages;
  candidate pairs come from `config.workers` bucket partitions run on the executor."""
  started, ids, dropped = time.perf_counter(), [d["id"] for d in docs], {}
  if len(set(ids)) != len(ids):
    raise ValueError("document ids must be unique before dedup; check the readers' id fields")
  if config.dedup.exact:
    for doc_id in exact_duplicates_from_keys(ids, [fingerprints[i][0] for i in ids]):
      dropped[doc_id] = "dedup:exact"
  if config.dedup.near:
    minhash = _minhash_config(config)
    remaining = [i for i in ids if i not in dropped]
    signatures = np.stack([fingerprints[i][1] for i in remaining]) if remaining else (
        np.zeros((0, minhash.num_perm), np.uint32))
    n = len(remaining)
    find = functools.partial(pairs_in_buckets, n=n, max_bucket=minhash.max_bucket)
    partitions = bucket_records(band_keys(signatures, minhash), max(config.workers, 1))
    with ordered_map(find, partitions, config.executor, config.workers, 1,
                     config.ray_address) as codes:
      pairs = pairs_from_codes(list(codes), n)
    pairs = pairs[estimated_jaccard(signatures, pairs) >= minhash.threshold]
    for doc_id in keepers_from_pairs(remaining, pairs):
      dropped[doc_id] = "dedup:near"
  for doc in docs:
    if doc["id"] in dropped:
      stats.drop(doc, dropped[doc["id"]])
  stats.seconds["dedup"] = time.perf_counter() - started
  return [doc for doc in docs if doc["id"] not in dropped]
