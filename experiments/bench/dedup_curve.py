"""Precision and recall of near-duplicate removal over a grid of Jaccard thresholds.

Builds the corpus of tests/data/curation/test_dedup.py (300 real Shakespeare documents plus
100 copies with 5-15% of their words edited), computes the LSH candidate pairs once per banding and
verification mode, then confirms pairs at each threshold and scores the planted copies.

  python experiments/bench/dedup_curve.py --json /tmp/dedup_curve.json
"""

import argparse
import dataclasses
import itertools
import json
import pathlib
import sys
import time

REPO = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from llm.data.curation.dedup import (EDITED_COPIES, MinHashConfig, exact_jaccard,  # noqa: E402
                                     keepers_from_pairs, near_duplicate_candidates,
                                     near_duplicates, shingle_hashes)
from llm.io import write_json_atomic  # noqa: E402
from tests.data.curation.test_dedup import planted_corpus, score  # noqa: E402


def parse_args(argv=None):
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--json", required=True, help="where to write the results")
  p.add_argument("--docs", type=int, default=300, help="real documents")
  p.add_argument("--planted", type=int, default=100, help="edited copies added")
  p.add_argument("--edit_low", type=float, default=0.05)
  p.add_argument("--edit_high", type=float, default=0.15)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--thresholds", default=",".join(f"{t:.2f}" for t in np.arange(0.05, 0.96, 0.05)))
  return p.parse_args(argv)


def summary(s: dict) -> dict:
  """A score without its long lists (their lengths and first few entries stay)."""
  out = {k: v for k, v in s.items() if not isinstance(v, list)}
  for key in ("genuine_real_duplicates", "false_pos_docs"):
    out[key] = len(s[key])
    out[key + "_examples"] = s[key][:5]
  return out


def corpus_stats(docs: list, planted: dict, ngram: int) -> dict:
  """Exact 5-gram Jaccard of the planted pairs, and the largest one between real documents."""
  hashes = {d["id"]: shingle_hashes(d["text"], ngram) for d in docs}
  planted_j = np.array([exact_jaccard(hashes[c], hashes[o]) for c, o in planted.items()])
  real = [i for i in hashes if i not in planted]
  real_j = max(exact_jaccard(hashes[a], hashes[b]) for a, b in itertools.combinations(real, 2))
  q = np.percentile(planted_j, [0, 5, 50, 95, 100]).round(3).tolist()
  return {"planted_jaccard_min_p5_median_p95_max": q,
          "max_jaccard_between_real_docs": round(real_j, 4)}


def fmt(x) -> str:
  return "  -  " if x is None else f"{x:.3f}"


def main(argv=None):
  args = parse_args(argv)
  thresholds = [float(t) for t in args.thresholds.split(",")]
  edits = (args.edit_low, args.edit_high)
  docs, planted = planted_corpus(args.docs, args.planted, edits, args.seed)
  ids = [d["id"] for d in docs]
  default = MinHashConfig()
  start = time.perf_counter()
  default_score = summary(score(docs, planted, near_duplicates(docs, default), default.threshold))
  default_s = time.perf_counter() - start
  start = time.perf_counter()
  edited_score = summary(score(docs, planted, near_duplicates(docs, EDITED_COPIES),
                               EDITED_COPIES.threshold))
  edited_s = time.perf_counter() - start
  curves = {}
  for banding, verify in itertools.product((EDITED_COPIES, default), ("minhash", "exact")):
    config = dataclasses.replace(banding, verify=verify)
    pairs, sims = near_duplicate_candidates(docs, config)
    name = f"{config.bands}x{config.rows}/{verify}"
    curves[name] = {"candidate_pairs": len(pairs), "points": [
        summary(score(docs, planted, keepers_from_pairs(ids, pairs[sims >= t]), t))
        for t in thresholds]}
  result = {
      "corpus": {"real_docs": args.docs, "planted": args.planted, "seed": args.seed,
                 "edit_fraction": list(edits), "ngram": default.ngram,
                 **corpus_stats(docs, planted, default.ngram)},
      "default_config": {"config": dataclasses.asdict(default), "seconds": round(default_s, 2),
                         **default_score},
      "edited_copies_config": {"config": dataclasses.asdict(EDITED_COPIES),
                               "seconds": round(edited_s, 2), **edited_score},
      "curves": curves,
  }
  write_json_atomic(args.json, result, indent=1)

  print(json.dumps(result["corpus"]))
  for label, c, s in (("default", default, default_score),
                       ("EDITED_COPIES", EDITED_COPIES, edited_score)):
    print(f"{label} {c.bands}x{c.rows} @{c.threshold:.2f}: precision {fmt(s['precision'])} "
          f"recall {fmt(s['recall'])} dropped {s['dropped']} "
          f"genuine {s['genuine_real_duplicates']}")
  names = list(curves)
  print("threshold " + " ".join(f"{n:>22}" for n in names)
        + "   (precision / recall; - = nothing dropped)")
  for k, t in enumerate(thresholds):
    cells = [curves[n]["points"][k] for n in names]
    print(f"{t:9.2f} " + " ".join(f"{fmt(c['precision']):>14} / {fmt(c['recall'])}" for c in cells))
  print(f"wrote {out}")


if __name__ == "__main__":
  main()
