"""Exact and near-duplicate removal over whole corpora (document records, see `document.py`).

Both stages see every document and return `{dropped_id: kept_id}`. The kept document of a
group is always its smallest id (plain string order), whatever order the documents come in.

Exact: texts are normalised (`normalise_for_exact`) and hashed; equal hashes form a group.

Near (MinHash + LSH):
  1. shingles: the set of overlapping `ngram`-word windows of the normalised text. A document
     with fewer than `ngram` words is one shingle of all its words (an empty one is the empty
     shingle, so all empty documents match each other);
  2. signatures: each shingle hashes to 32 bits, then for each of `num_perm` seeded
     pairwise-independent hash functions (multiply-add-shift) keep the minimum. The fraction
     of equal slots in two signatures estimates the Jaccard similarity of the shingle sets;
  3. banding (`band_keys`): the signature is cut into `bands` x `rows`, each band hashed to a
     bucket key. Documents sharing a (band, key) are candidates, with probability
     1 - (1 - J**rows)**bands: for 14 x 8, 0.57 at J = 0.7, 0.92 at 0.8, 0.99 at 0.86;
  4. verification: a candidate pair is confirmed when its Jaccard >= `threshold`, estimated
     from the signatures (`verify="minhash"`, default: needs only signatures) or exact over
     the shingle-hash sets (`verify="exact"`: more precise, needs the shingles again);
  5. confirmed pairs are joined by union-find; each cluster keeps its smallest id.
  A bucket larger than `max_bucket` (say, thousands of copies of one page) is not expanded
  into all pairs: its members are paired with its first member only, keeping work linear.

Scale. No step needs all documents' text in one process:
  - fingerprints (`document_fingerprint`: exact key and signature) are a pure function of one
    text; the curation pipeline computes them in its executor's workers, beside the other
    per-document stages;
  - `band_keys` is a pure function of signatures. `bucket_records` splits the (key, row)
    records by key % P (keys already mix in the band index, so a bucket never straddles two
    partitions); each partition is one executor task (`pairs_in_buckets`) that groups its
    records by key and emits the candidate pairs of each bucket;
  - verification joins each pair with its two signatures and needs nothing else;
  - connected components need only the confirmed pairs (the driver's union-find here). At
    cluster scale they run distributed instead, e.g. iterative min-label propagation: each id
    starts as its own label, each round every edge sends the smaller label to both ends,
    until nothing changes; the final label is the component's smallest id, the keeper here.
"""

import dataclasses
import functools
import hashlib
import unicodedata
from typing import Iterable, Sequence

import numpy as np

_SHIFT32 = np.uint64(32)
_ODD_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)


@functools.lru_cache(maxsize=None)
def _is_punctuation(char: str) -> bool:
  return unicodedata.category(char).startswith("P")


def normalise_for_exact(text: str) -> str:
  """NFC, casefold, delete punctuation (Unicode P*), collapse whitespace runs to one space.

  Punctuation is deleted rather than turned into a space, so "don't" == "dont" (but
  "well-known" becomes "wellknown", not "well known").
  """
  text = unicodedata.normalize("NFC", unicodedata.normalize("NFC", text).casefold())
  table = {ord(c): None for c in set(text) if _is_punctuation(c)}
  return " ".join(text.translate(table).split())


def _check_ids(docs: Sequence[dict]) -> list[str]:
  ids = [d["id"] for d in docs]
  if len(set(ids)) != len(ids):
    raise ValueError("document ids must be unique")
  return ids


def _keepers(ids: Sequence[str], groups: Iterable[Iterable[int]]) -> dict[str, str]:
  """{dropped_id: smallest id of its group} for groups of document indices."""
  dropped = {}
  for group in groups:
    members = sorted(ids[i] for i in group)
    dropped.update((m, members[0]) for m in members[1:])
  return dropped


def exact_key(text: str) -> bytes:
  """128-bit hash of the normalised text: equal keys mean exact duplicates."""
  return hashlib.blake2b(normalise_for_exact(text).encode(), digest_size=16).digest()


def exact_duplicates_from_keys(ids: Sequence[str], keys: Sequence[bytes]) -> dict[str, str]:
  """{dropped_id: kept_id} for documents with equal `exact_key`s."""
  groups: dict[bytes, list[int]] = {}
  for i, key in enumerate(keys):
    groups.setdefault(key, []).append(i)
  return _keepers(ids, (g for g in groups.values() if len(g) > 1))


def exact_duplicates(docs: Sequence[dict]) -> dict[str, str]:
  """Documents whose normalised texts are equal; keeps the smallest id of each group."""
  return exact_duplicates_from_keys(_check_ids(docs), [exact_key(d["text"]) for d in docs])


@dataclasses.dataclass(frozen=True)
class MinHashConfig:
  """MinHash/LSH settings; `num_perm` must equal `bands * rows`.

  The defaults (5-word shingles, 14 x 8 bands) find close copies: 5-gram Jaccard >~ 0.8.
  Each edited word breaks up to `ngram` shingles, so a copy with a fraction e of its words
  edited at random keeps ~(1-e)**5 of its shingles: 5% edits give J ~0.6, 15% J ~0.3. To
  catch those, use few rows per band and a low threshold: `EDITED_COPIES` below.
  """
  ngram: int = 5
  num_perm: int = 112
  bands: int = 14
  rows: int = 8
  seed: int = 1234
  threshold: float = 0.7  # Jaccard needed to confirm a candidate pair; ~ the 14 x 8 knee
  verify: str = "minhash"  # "minhash": estimate from signatures; "exact": shingle sets
  max_bucket: int = 500

  def __post_init__(self):
    if self.bands * self.rows != self.num_perm:
      raise ValueError(f"bands * rows = {self.bands * self.rows} != num_perm = {self.num_perm}")
    if self.verify not in ("minhash", "exact") or self.ngram < 1:
      raise ValueError(f"need verify in ('minhash', 'exact') and ngram >= 1: {self}")


# For copies with ~5-15% of words edited (5-gram J ~0.3-0.65; unrelated text J < 0.05): a
# pair at J = 0.3 is a candidate with probability 1 - (1 - 0.3**2)**56 = 0.995.
EDITED_COPIES = MinHashConfig(bands=56, rows=2, threshold=0.2)


def _mix64(z: np.ndarray) -> np.ndarray:
  """splitmix64 finaliser on uint64 arrays (wrapping arithmetic)."""
  z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
  z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
  return z ^ (z >> np.uint64(31))


def words(text: str) -> list[str]:
  """The words shingles are built from: the exact-dedup normalisation, split on spaces."""
  return normalise_for_exact(text).split()


def shingles(text: str, ngram: int) -> set[str]:
  """The shingle set as strings (for checks and exact Jaccard; the pipeline uses hashes)."""
  ws = words(text)
  if len(ws) < ngram:
    return {" ".join(ws)}
  return {" ".join(ws[i:i + ngram]) for i in range(len(ws) - ngram + 1)}


@functools.lru_cache(maxsize=1 << 18)
def _word_hash(word: str) -> int:
  return int.from_bytes(hashlib.blake2b(word.encode(), digest_size=8).digest(), "little")


def shingle_hashes(text: str, ngram: int) -> np.ndarray:
  """Unique 32-bit hashes of a text's shingles (as uint64), >= 1 of them."""
  return _shingle_hashes_of_words(words(text), ngram)


def _shingle_hashes_of_words(ws: list[str], ngram: int) -> np.ndarray:
  wh = np.fromiter(map(_word_hash, ws), np.uint64, len(ws))
  n = min(ngram, len(wh))  # short documents: one shingle of all their words
  count = len(wh) - n + 1
  h = np.full(count, np.uint64(0x9E3779B97F4A7C15 + n), dtype=np.uint64)
  for j in range(n):  # polynomial in the word hashes (mod 2**64), mixed once at the end
    h = h * _ODD_MULTIPLIER + wh[j:j + count]
  return np.unique(_mix64(h) >> _SHIFT32)


@functools.lru_cache(maxsize=8)
def permutations(config: MinHashConfig) -> tuple[np.ndarray, np.ndarray]:
  """The seeded 64-bit (a, b) of the num_perm hash functions."""
  rng = np.random.default_rng(config.seed)
  a, b = (rng.integers(0, 1 << 64, size=config.num_perm, dtype=np.uint64) for _ in range(2))
  a.setflags(write=False)  # cached: shared by every call
  b.setflags(write=False)
  return a, b


def signatures_from_hashes(hashes: Sequence[np.ndarray], config: MinHashConfig,
                           chunk_elems: int = 1 << 21) -> np.ndarray:
  """[n, num_perm] uint32 MinHash signatures of non-empty 32-bit shingle-hash arrays.

  Hash function i is multiply-add-shift, h(x) = ((a_i x + b_i) mod 2**64) >> 32 for 32-bit x
  (Dietzfelbinger 1996; pairwise independent, like (a x + b) mod p, at 3 machine operations).
  All documents' shingles go through in slices of ~chunk_elems values, one reduceat each.
  """
  a, b = permutations(config)
  chunk_rows = max(1, chunk_elems // config.num_perm)
  out = np.full((len(hashes), config.num_perm), np.iinfo(np.uint32).max, dtype=np.uint32)
  lengths = np.array([len(h) for h in hashes], dtype=np.int64)
  if (lengths == 0).any():
    raise ValueError("every document needs at least one shingle hash")
  starts = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64)
  flat = np.concatenate([np.zeros(0, np.uint64), *hashes]).astype(np.uint64)
  for lo in range(0, len(flat), chunk_rows):
    hi = min(lo + chunk_rows, len(flat))
    values = ((a[None, :] * flat[lo:hi, None] + b[None, :]) >> _SHIFT32).astype(np.uint32)
    d0 = int(np.searchsorted(starts, lo, side="right")) - 1
    d1 = int(np.searchsorted(starts, hi, side="left"))
    offsets = np.maximum(starts[d0:d1], lo) - lo
    out[d0:d1] = np.minimum(out[d0:d1], np.minimum.reduceat(values, offsets, axis=0))
  return out


def document_fingerprint(text: str, config: "MinHashConfig | None") -> tuple[bytes, np.ndarray | None]:
  """(exact_key, MinHash signature or None): the per-document half of dedup, run in parallel
  with the other per-document stages."""
  normalised = normalise_for_exact(text)
  signature = None
  if config is not None:
    hashes = _shingle_hashes_of_words(normalised.split(), config.ngram)
    signature = signatures_from_hashes([hashes], config)[0]
  return hashlib.blake2b(normalised.encode(), digest_size=16).digest(), signature


def minhash_signatures(texts: Sequence[str], config: MinHashConfig = MinHashConfig()) -> np.ndarray:
  """[len(texts), num_perm] uint64 MinHash signatures of the texts' shingle sets."""
  return signatures_from_hashes([shingle_hashes(t, config.ngram) for t in texts], config)


def band_keys(signatures: np.ndarray, config: MinHashConfig) -> np.ndarray:
  """[n, bands] uint64 bucket keys; the band index is mixed in, so keys are global."""
  sig = signatures.reshape(len(signatures), config.bands, config.rows).astype(np.uint64)
  h = _mix64(np.arange(config.bands, dtype=np.uint64) + np.uint64(config.seed))
  h = np.broadcast_to(h, sig.shape[:2])
  for r in range(config.rows):
    h = _mix64(h ^ sig[:, :, r])
  return h


def bucket_records(keys: np.ndarray, partitions: int = 1) -> list[tuple[np.ndarray, np.ndarray]]:
  """The (bucket key, row) records of a [n, bands] key matrix, split by key % partitions.

  Keys already mix in the band index, so one partition can group its records by key alone;
  every record of a bucket lands in the same partition.
  """
  n, bands = keys.shape
  flat_keys, rows = keys.reshape(-1), np.repeat(np.arange(n, dtype=np.int64), bands)
  part = flat_keys % np.uint64(max(partitions, 1))
  return [(flat_keys[part == p], rows[part == p]) for p in range(max(partitions, 1))]


def pairs_in_buckets(records: tuple[np.ndarray, np.ndarray], n: int,
                     max_bucket: int = 500) -> np.ndarray:
  """Unique pair codes i * n + j (i < j) of rows sharing a bucket key, for one partition."""
  flat_keys, rows = records
  order = np.lexsort((rows, flat_keys))  # by key, then row: members in index order
  flat_keys, rows = flat_keys[order], rows[order]
  starts = np.flatnonzero(np.concatenate([[True], flat_keys[1:] != flat_keys[:-1]]))
  sizes = np.diff(np.append(starts, len(flat_keys)))
  found = [np.zeros(0, dtype=np.int64)]
  for start, size in zip(starts[sizes > 1].tolist(), sizes[sizes > 1].tolist()):
    members = np.unique(rows[start:start + size])
    if len(members) < 2:
      continue
    if len(members) > max_bucket:
      i, j = np.zeros(len(members) - 1, dtype=np.int64), np.arange(1, len(members))
    else:
      i, j = np.triu_indices(len(members), 1)
    found.append(members[i] * n + members[j])
  return np.unique(np.concatenate(found))


def pairs_from_codes(codes: Sequence[np.ndarray], n: int) -> np.ndarray:
  """[m, 2] unique pairs from the pair codes of all partitions."""
  codes = np.unique(np.concatenate([np.zeros(0, np.int64), *codes]))
  return np.stack([codes // max(n, 1), codes % max(n, 1)], axis=1)


def candidate_pairs(keys: np.ndarray, max_bucket: int = 500) -> np.ndarray:
  """[m, 2] int64 unique pairs (i < j) of rows sharing a key in some band column."""
  n = len(keys)
  return pairs_from_codes([pairs_in_buckets(r, n, max_bucket) for r in bucket_records(keys)], n)


def estimated_jaccard(signatures: np.ndarray, pairs: np.ndarray, chunk: int = 65536) -> np.ndarray:
  """Fraction of equal signature slots for each pair of rows."""
  out = np.empty(len(pairs))
  for s in range(0, len(pairs), chunk):
    p = pairs[s:s + chunk]
    out[s:s + chunk] = (signatures[p[:, 0]] == signatures[p[:, 1]]).mean(axis=1)
  return out


def exact_jaccard(x: np.ndarray, y: np.ndarray) -> float:
  """Jaccard similarity of two sorted unique hash arrays."""
  inter = len(np.intersect1d(x, y, assume_unique=True))
  return inter / (len(x) + len(y) - inter)


def _components(n: int, pairs: np.ndarray) -> list[list[int]]:
  parent = list(range(n))

  def find(x: int) -> int:
    while parent[x] != x:
      parent[x] = parent[parent[x]]
      x = parent[x]
    return x

  for i, j in pairs.tolist():
    ri, rj = find(i), find(j)
    if ri != rj:
      parent[max(ri, rj)] = min(ri, rj)
  groups: dict[int, list[int]] = {}
  for i in range(n):
    groups.setdefault(find(i), []).append(i)
  return [g for g in groups.values() if len(g) > 1]


def near_duplicate_candidates(docs: Sequence[dict], config: MinHashConfig = MinHashConfig()):
  """(pairs [m, 2] of document indices, their Jaccard [m]) for all LSH candidate pairs.

  The Jaccard is estimated from signatures or exact over shingle hashes, per `config.verify`.
  """
  hashes = [shingle_hashes(d["text"], config.ngram) for d in docs]
  sig = signatures_from_hashes(hashes, config)
  pairs = candidate_pairs(band_keys(sig, config), config.max_bucket)
  if config.verify == "minhash":
    return pairs, estimated_jaccard(sig, pairs)
  return pairs, np.array([exact_jaccard(hashes[i], hashes[j]) for i, j in pairs.tolist()])


def keepers_from_pairs(ids: Sequence[str], pairs: np.ndarray) -> dict[str, str]:
  """Connected components of the confirmed pairs -> {dropped_id: smallest id of its cluster}."""
  return _keepers(ids, _components(len(ids), pairs))


def near_duplicates(docs: Sequence[dict],
                    config: MinHashConfig = MinHashConfig()) -> dict[str, str]:
  """MinHash-LSH near duplicates: {dropped_id: kept_id}, keeping each cluster's smallest id."""
  ids = _check_ids(docs)
  pairs, sims = near_duplicate_candidates(docs, config)
  return keepers_from_pairs(ids, pairs[sims >= config.threshold])
