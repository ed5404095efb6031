"""Sharded, gzip-compressed JSONL output, each shard written atomically."""

import gzip
import json
import os


def write_shards(docs: list[dict], out_dir: str, docs_per_shard: int) -> list[str]:
  """Writes shard-00000.jsonl.gz, ... (temp file, then rename); returns their paths."""
  os.makedirs(out_dir, exist_ok=True)
  paths = []
  for start in range(0, len(docs), docs_per_shard):
    path = os.path.join(out_dir, f"shard-{start // docs_per_shard:05d}.jsonl.gz")
    # Level 6 (zlib's default) is ~3x faster than gzip's 9 for ~2% more bytes; mtime=0 makes
    # the same documents give the same bytes.
    with gzip.GzipFile(path + ".tmp", "wb", compresslevel=6, mtime=0) as raw:
      raw.write("".join(json.dumps(doc, ensure_ascii=False) + "\n"
                        for doc in docs[start:start + docs_per_shard]).encode("utf-8"))
    os.replace(path + ".tmp", path)
    paths.append(path)
  return paths
