"""Exact and near-duplicate removal: exact groups, near duplicates planted in real
Shakespeare documents (precision / recall), and the MinHash Jaccard estimate."""

import dataclasses
import functools
import random
import re

import numpy as np
import pytest

from llm.data.curation.dedup import (EDITED_COPIES, MinHashConfig, band_keys,
                                     bucket_records, document_fingerprint, exact_duplicates,
                                     minhash_signatures, near_duplicates, normalise_for_exact,
                                     pairs_from_codes, pairs_in_buckets, shingles, words)
from llm.data.curation.sources import load_documents

N_DOCS, N_PLANTED, EDIT_RANGE = 300, 100, (0.05, 0.15)


@functools.lru_cache(maxsize=None)
def real_documents(n: int = N_DOCS) -> tuple:
  docs = load_documents("shakespeare", max_chars=n * 4500)[:n]
  assert len(docs) == n
  return tuple(docs)


def edit_words(text: str, rate: float, vocab: list[str], rng: random.Random) -> str:
  """Edits round(rate * words) distinct word positions: each one is substituted by a random
  vocabulary word, deleted, or gets a random word inserted before it (a third each)."""
  tokens = text.split()
  positions = set(rng.sample(range(len(tokens)), max(1, round(rate * len(tokens)))))
  out = []
  for i, token in enumerate(tokens):
    op = rng.choice(("sub", "del", "ins")) if i in positions else "keep"
    if op == "ins":
      out.append(rng.choice(vocab))
    if op in ("keep", "ins"):
      out.append(token)
    elif op == "sub":
      out.append(rng.choice(vocab))
  return " ".join(out)


def planted_corpus(n_docs: int = N_DOCS, n_planted: int = N_PLANTED,
                   edit_range: tuple = EDIT_RANGE, seed: int = 0) -> tuple[list, dict]:
  """Real documents plus edited copies of n_planted of them: (docs, {copy_id: original_id}).

  Copy ids are "<original id>~edit", which sort after the original (and every other id
  of that play), so the original stays the keeper."""
  rng = random.Random(seed)
  docs = [dict(d) for d in real_documents(n_docs)]
  vocab = sorted({w for d in docs for w in words(d["text"])})
  originals = sorted(rng.sample([d for d in docs if len(d["text"].split()) >= 50], n_planted),
                     key=lambda d: d["id"])
  planted = {}
  for d in originals:
    copy_id = d["id"] + "~edit"
    docs.append({"id": copy_id, "source": d["source"],
                 "text": edit_words(d["text"], rng.uniform(*edit_range), vocab, rng)})
    planted[copy_id] = d["id"]
  return docs, planted


def jaccard(a: set, b: set) -> float:
  return len(a & b) / len(a | b)


def score(docs: list, planted: dict, dropped: dict, threshold: float, ngram: int = 5) -> dict:
  """Precision and recall of the planted copies.

  A planted copy is a true positive when dropped into its original's cluster. A dropped real
  document is a *genuine* duplicate (reported, counted neither way) when its exact shingle
  Jaccard with some other real document of its cluster is >= threshold: the real corpus may
  hold near duplicates of its own. Every other dropped document is a false positive, and so
  is a planted copy dropped into another cluster. `strict_precision` counts genuine ones as
  false positives too.
  """
  keeper = lambda i: dropped.get(i, i)  # noqa: E731
  tp = sum(c in dropped and keeper(c) == keeper(o) for c, o in planted.items())
  wrong_cluster = sum(c in dropped and keeper(c) != keeper(o) for c, o in planted.items())
  clusters: dict = {}
  for doc_id in (i for i in (d["id"] for d in docs) if i not in planted):
    clusters.setdefault(keeper(doc_id), []).append(doc_id)
  text = {d["id"]: d["text"] for d in docs}
  sets = functools.lru_cache(maxsize=None)(lambda i: frozenset(shingles(text[i], ngram)))
  genuine, false_pos = [], []
  for doc_id in sorted(i for i in dropped if i not in planted):
    best = max((jaccard(sets(doc_id), sets(o)) for o in clusters[keeper(doc_id)] if o != doc_id),
               default=0.0)
    (genuine if best >= threshold else false_pos).append((doc_id, keeper(doc_id), round(best, 3)))
  fp = wrong_cluster + len(false_pos)
  return {"threshold": threshold, "true_pos": tp, "planted": len(planted), "dropped": len(dropped),
          "false_pos": fp, "genuine_real_duplicates": genuine, "false_pos_docs": false_pos,
          "precision": tp / (tp + fp) if tp + fp else None,  # None: nothing dropped
          "strict_precision": tp / len(dropped) if dropped else None,
          "recall": tp / len(planted)}


# -- exact ------------------------------------------------------------------------------------


def test_normalise_for_exact():
  assert normalise_for_exact("  Hello,\n\tWORLD!!  ") == "hello world"
  assert normalise_for_exact("Don't — stop…") == "dont stop"
  assert normalise_for_exact("cafe\u0301 STRASSE") == normalise_for_exact("café straße")
  assert normalise_for_exact("") == ""


def _variants(text: str, rng: random.Random) -> dict[str, str]:
  spaced = re.sub(r"\s+", lambda m: rng.choice([" ", "  ", "\n", "\t", " \n\n "]), text)
  no_punct = re.sub(r"[^\w\s]", "", text)
  more_punct = re.sub(r"(\w+)", lambda m: m.group(1) + rng.choice(["", "", ",", "!", "--"]), text)
  return {"space": spaced, "upper": text.upper(), "swapcase": text.swapcase(),
          "nopunct": no_punct, "punct": more_punct, "all": "\n  " + no_punct.upper() + " \t"}


def test_exact_duplicates_finds_every_formatting_copy_and_keeps_the_smallest_id():
  rng = random.Random(1)
  originals = [d for d in real_documents()[:80] if len(d["text"].split()) >= 20][:60]
  assert exact_duplicates(originals) == {}
  docs, expected = list(originals), {}
  for k, d in enumerate(originals[:30]):
    group = [d["id"]]
    for kind, text in _variants(d["text"], rng).items():
      # Some copies sort before the original, so the keeper is not always the original.
      copy_id = (f"0copy/{k}/{kind}" if kind in ("upper", "all") and k % 2 else f"{d['id']}/{kind}")
      docs.append({"id": copy_id, "text": text, "source": "test"})
      group.append(copy_id)
    keep = min(group)
    expected.update({i: keep for i in group if i != keep})
  dropped = exact_duplicates(docs)
  assert dropped == expected  # 100% found, nothing else dropped, keeper = smallest id
  shuffled = list(docs)
  random.Random(2).shuffle(shuffled)
  assert exact_duplicates(shuffled) == dropped


def test_duplicate_ids_are_rejected():
  docs = [{"id": "a", "text": "x"}, {"id": "a", "text": "y"}]
  with pytest.raises(ValueError):
    exact_duplicates(docs)
  with pytest.raises(ValueError):
    near_duplicates(docs)


# -- MinHash internals ------------------------------------------------------------------------


def test_signatures_shapes_short_documents_and_band_keys():
  config = MinHashConfig()
  texts = ["To be, or not to be: that is the question.", "TO BE or not to be that is the question",
           "to be or", "To be, or...", "", "   "]
  sig = minhash_signatures(texts, config)
  assert sig.shape == (6, 112) and sig.dtype == np.uint32
  assert (sig[0] == sig[1]).all()  # same normalised words
  assert (sig[2] == sig[3]).all() and (sig[4] == sig[5]).all()  # short: one all-words shingle
  assert (sig[2] != sig[0]).mean() > 0.9 and (sig[4] != sig[2]).mean() > 0.9
  assert shingles("to be or", 5) == {"to be or"} and shingles("", 5) == {""}
  assert (minhash_signatures(texts[::-1], config)[::-1] == sig).all()
  keys = band_keys(sig, config)
  assert keys.shape == (6, 14) and keys.dtype == np.uint64
  assert (keys[0] == keys[1]).all() and (keys[0] != keys[2]).all()
  same_bands = np.tile(sig[:1, :8], (1, 14))  # every band holds the same 8 values
  assert len(set(band_keys(same_bands, config)[0].tolist())) == 14  # band index is in the key
  with pytest.raises(ValueError):
    MinHashConfig(bands=10, rows=8)


def test_minhash_estimate_tracks_exact_jaccard_and_datasketch():
  datasketch = pytest.importorskip("datasketch")
  rng = random.Random(3)
  docs = [d for d in real_documents()[:60] if len(d["text"].split()) >= 200][:40]
  vocab = sorted({w for d in docs for w in words(d["text"])})
  pairs = [(d["text"], edit_words(d["text"], rate, vocab, rng))
           for d, rate in zip(docs, np.linspace(0.0, 0.25, len(docs)))]
  pairs += [(docs[i]["text"], docs[i + 1]["text"]) for i in range(0, 10, 2)]  # unrelated
  exact = np.array([jaccard(shingles(a, 5), shingles(b, 5)) for a, b in pairs])
  assert exact.min() < 0.05 and exact.max() > 0.95 and ((exact > 0.2) & (exact < 0.8)).sum() >= 20
  errors = {}
  configs = {"ours": MinHashConfig(), "ours_512": MinHashConfig(num_perm=512, bands=64)}
  for name, config in configs.items():
    sig = minhash_signatures([t for pair in pairs for t in pair], config)
    errors[name] = (sig[0::2] == sig[1::2]).mean(axis=1) - exact
  ds = []
  for a, b in pairs:
    m = [datasketch.MinHash(num_perm=112, seed=7) for _ in range(2)]
    for sketch, text in zip(m, (a, b)):
      sketch.update_batch([s.encode() for s in shingles(text, 5)])
    ds.append(m[0].jaccard(m[1]))
  errors["datasketch"] = np.array(ds) - exact
  for name, err in errors.items():  # 112 slots: sd <= 0.047 per pair
    limit = 0.025 if name == "ours_512" else 0.045
    assert np.abs(err).max() < 0.2 and np.abs(err).mean() < limit and abs(err.mean()) < 0.02, name
  assert np.abs(errors["ours"]).mean() < 1.5 * np.abs(errors["datasketch"]).mean() + 0.01


@pytest.mark.parametrize("partitions", [1, 3, 8])
def test_partitioned_buckets_find_the_pairs_of_a_naive_band_comparison(partitions):
  config = MinHashConfig(num_perm=8, bands=4, rows=2)
  rng = np.random.default_rng(partitions)
  sig = rng.integers(0, 3, size=(40, 8)).astype(np.uint64)  # 3 values: many shared bands
  keys = band_keys(sig, config)
  expected = {(i, j) for i in range(40) for j in range(i + 1, 40)
              if any((sig[i, 2 * b:2 * b + 2] == sig[j, 2 * b:2 * b + 2]).all() for b in range(4))}
  records = bucket_records(keys, partitions)
  assert sum(len(k) for k, _ in records) == 40 * 4
  pairs = pairs_from_codes([pairs_in_buckets(r, 40) for r in records], 40)
  assert {tuple(p) for p in pairs.tolist()} == expected


def test_document_fingerprint_matches_the_corpus_functions():
  texts = [d["text"] for d in real_documents()[:5]]
  config = MinHashConfig()
  sig = minhash_signatures(texts, config)
  for text, row in zip(texts, sig):
    key, signature = document_fingerprint(text, config)
    assert (signature == row).all()
    assert key == document_fingerprint(text.upper() + " !", None)[0]


# -- near duplicates planted in real text -----------------------------------------------------


@pytest.mark.parametrize("verify", ["minhash", "exact"])
def test_planted_near_duplicates_precision_and_recall(verify):
  docs, planted = planted_corpus()
  config = dataclasses.replace(EDITED_COPIES, verify=verify)
  dropped = near_duplicates(docs, config)
  s = score(docs, planted, dropped, config.threshold)
  print(f"\n{verify}: precision {s['precision']:.3f} recall {s['recall']:.3f} "
        f"genuine real duplicates {s['genuine_real_duplicates']} false pos {s['false_pos_docs']}")
  assert s["precision"] >= 0.95 and s["recall"] >= 0.95, s
  assert all(dropped[c] == o for c, o in planted.items() if c in dropped and o not in dropped)
  shuffled = list(docs)
  random.Random(4).shuffle(shuffled)
  assert near_duplicates(shuffled, config) == dropped


def test_default_config_finds_lightly_edited_copies():
  # The defaults (14 x 8 bands, threshold 0.7) target close copies: 0.5-1.5% of words edited
  # leaves a 5-gram Jaccard of ~0.87-0.96 (README: >= 0.85).
  docs, planted = planted_corpus(edit_range=(0.005, 0.015), seed=5)
  text = {d["id"]: d["text"] for d in docs}
  assert min(jaccard(set(shingles(text[c], 5)), set(shingles(text[o], 5)))
             for c, o in planted.items()) >= 0.85
  s = score(docs, planted, near_duplicates(docs), MinHashConfig().threshold)
  assert s["precision"] >= 0.95 and s["recall"] >= 0.95, s
