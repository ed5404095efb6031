"""Tokenize documents in several processes and pack them into rows of seq_len in array_record.

Documents are cut into `shards` contiguous groups (a fixed number, so the output does not
depend on the number of workers). Each worker loads the tokenizer, encodes its documents (with
fill-in-the-middle at `fim_rate`, seeded per document), packs them (`packing.pack_documents`:
documents longer than a row continue in the next rows, nothing is dropped) and writes
rows-NNNNN.array_record, one record per row. `packed.json` is written last with the counts and
the packing efficiency (real tokens over row slots).
"""

import dataclasses
import functools
import json
import os
import time

import numpy as np

from llm.data.curation.executors import ordered_map
from llm.data.packing import ROW_KEYS, pack_documents
from llm.io import write_json_atomic
from llm.tokenizer import load_tokenizer
from llm.tokenizer.chat import render_chat
from llm.tokenizer.fim import fim_document

MANIFEST = "packed.json"


@dataclasses.dataclass(frozen=True)
class PackSettings:
  seq_len: int
  fim_rate: float = 0.0
  fim_spm_rate: float = 0.5
  seed: int = 0


def encode_row(row: dict[str, np.ndarray]) -> bytes:
  return np.stack([row[k] for k in ROW_KEYS]).astype(np.int32).tobytes()


def decode_row(record: bytes, seq_len: int) -> dict[str, np.ndarray]:
  arrays = np.frombuffer(record, np.int32).reshape(len(ROW_KEYS), seq_len)
  return dict(zip(ROW_KEYS, arrays))


def _pack_shard(job: tuple, tokenizer_path: str, settings: PackSettings, out_dir: str) -> dict:
  """Tokenizes, packs and writes one shard; returns its counts."""
  from array_record.python.array_record_module import ArrayRecordWriter
  shard, first_index, texts = job
  tokenizer = load_tokenizer(tokenizer_path)
  docs, modes = [], {"none": 0, "psm": 0, "spm": 0, "chat": 0}
  for i, item in enumerate(texts):
    if isinstance(item, str):
      rng = np.random.default_rng([settings.seed, first_index + i])
      ids, mode = fim_document(item, tokenizer, rng, settings.fim_rate, settings.fim_spm_rate)
    else:  # a conversation: its chat template, with the control ids it inserts
      ids, mode = render_chat(tokenizer, item)[0], "chat"
    docs.append(ids)
    modes[mode] += 1
  rows = pack_documents(docs, settings.seq_len, tokenizer.eos_id, tokenizer.pad_id,
                        tokenizer.bos_id) if docs else {k: np.zeros((0, settings.seq_len))
                                                        for k in ROW_KEYS}
  path = os.path.join(out_dir, f"rows-{shard:05d}.array_record")
  writer = ArrayRecordWriter(path + ".tmp", "group_size:1")
  for r in range(len(rows["inputs"])):
    writer.write(encode_row({k: v[r] for k, v in rows.items()}))
  writer.close()
  os.replace(path + ".tmp", path)
  real = int((rows["segment_ids"] > 0).sum())
  return {"path": path, "documents": len(texts), "rows": int(len(rows["inputs"])),
          "max_token_id": max((max(d) for d in docs if d), default=0),
          "tokens": sum(len(d) for d in docs), "real_slots": real,
          "trained_tokens": int(rows["loss_mask"].sum()), "layouts": modes}


def tokenize_and_pack(texts: list, tokenizer_path: str, out_dir: str,
                      settings: PackSettings, shards: int = 8, workers: int = 1) -> dict:
  """Writes the packed shards and packed.json; returns the manifest. Items are document texts
  (FIM may rearrange them) or conversations (lists of {"role", "content"}: chat template)."""
  os.makedirs(out_dir, exist_ok=True)
  size = max(1, -(-len(texts) // shards))
  jobs = [(s, s * size, texts[s * size:(s + 1) * size]) for s in range(shards)]
  started = time.perf_counter()
  work = functools.partial(_pack_shard, tokenizer_path=tokenizer_path, settings=settings,
                           out_dir=out_dir)
  with ordered_map(work, jobs, "local", workers, 1) as results:
    parts = list(results)
  seconds = time.perf_counter() - started
  rows = sum(p["rows"] for p in parts)
  manifest = {
      "seq_len": settings.seq_len, "fim_rate": settings.fim_rate,
      "fim_spm_rate": settings.fim_spm_rate, "seed": settings.seed, "tokenizer": tokenizer_path,
      "shards": [os.path.basename(p["path"]) for p in parts], "rows": rows,
      "documents": sum(p["documents"] for p in parts), "tokens": sum(p["tokens"] for p in parts),
      "packing_efficiency": sum(p["real_slots"] for p in parts) / max(1, rows * settings.seq_len),
      "max_token_id": max(p["max_token_id"] for p in parts),
      "layouts": {m: sum(p["layouts"][m] for p in parts)
                  for m in ("none", "psm", "spm", "chat")},
      "workers": workers, "seconds": seconds,
      "tokens_per_second": sum(p["tokens"] for p in parts) / seconds}
  write_json_atomic(os.path.join(out_dir, MANIFEST), manifest, indent=2)
  return manifest


class PackedRows:
  """Random access to the rows of a packed folder (what the loader reads)."""

  def __init__(self, folder: str):
    import grain
    path = os.path.join(folder, MANIFEST)
    if not os.path.exists(path):
      raise FileNotFoundError(f"{folder} has no {MANIFEST}: pack it with "
                              "llm.data.tokenize_pack.tokenize_and_pack")
    with open(path, encoding="utf-8") as f:
      self.manifest = json.load(f)
    self.seq_len = self.manifest["seq_len"]
    self._source = grain.sources.ArrayRecordDataSource(
        [os.path.join(folder, s) for s in self.manifest["shards"]])

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, i: int) -> dict[str, np.ndarray]:
    return decode_row(self._source[i], self.seq_len)

  def to_arrays(self) -> dict[str, np.ndarray]:
    """Every row in memory, as a dict of [rows, seq_len] arrays (for small splits)."""
    rows = [self[i] for i in range(len(self))]
    return {k: np.stack([r[k] for r in rows]) if rows else np.zeros((0, self.seq_len), np.int32)
            for k in ROW_KEYS}
