"""From a named text source to a trained tokenizer and packed train/held-out rows in the workdir.

Outputs are cached (tokenizer.model, train_rows.npz, heldout_rows.npz) with a manifest of the data
config that made them, so a resumed run reuses exactly the same token data, and a changed data
config on the same workdir is an error rather than a silent reuse.
"""

import json
import logging
import os

from llm.data.packing import load_rows, pack_documents, save_rows
from llm.data.sources import is_heldout, load_documents
from llm.tokenizer import load_tokenizer, train_tokenizer


def prepare_lm_data(data_config, workdir: str):
  """Returns (tokenizer, train_rows, heldout_rows), building whatever the workdir lacks."""
  data_dir = os.path.join(workdir, "data")
  os.makedirs(data_dir, exist_ok=True)
  tok_path = data_config.tokenizer_path or os.path.join(data_dir, "tokenizer.model")
  train_path = os.path.join(data_dir, "train_rows.npz")
  heldout_path = os.path.join(data_dir, "heldout_rows.npz")
  manifest_path = os.path.join(data_dir, "manifest.json")
  manifest = json.loads(data_config.to_json(sort_keys=True))
  if os.path.exists(manifest_path):
    with open(manifest_path, encoding="utf-8") as f:
      previous = json.load(f)
    changed = sorted(k for k in set(previous) | set(manifest) if previous.get(k) != manifest.get(k))
    if changed:
      raise ValueError(f"{data_dir} was prepared with a different data config "
                       f"(changed: {', '.join('data.' + k for k in changed)}); use a new "
                       "--workdir, or delete that folder to rebuild it")
    return load_tokenizer(tok_path), load_rows(train_path), load_rows(heldout_path)

  only = tuple(s for s in data_config.curated_sources.split(",") if s)
  docs = load_documents(data_config.source, data_config.max_chars, only)
  heldout = [d for d in docs if is_heldout(d["id"], data_config.heldout_fraction)]
  train = [d for d in docs if not is_heldout(d["id"], data_config.heldout_fraction)]
  if not heldout or not train:
    raise ValueError(f"data.heldout_fraction={data_config.heldout_fraction} left "
                     f"{len(train)} train and {len(heldout)} held-out documents; both must be > 0")
  logging.info("documents: %d train, %d held-out (%d chars)", len(train), len(heldout),
               sum(len(d["text"]) for d in docs))
  if os.path.exists(tok_path):
    tokenizer = load_tokenizer(tok_path)
  else:
    tokenizer = train_tokenizer([d["text"] for d in train], data_config.tokenizer_vocab_size,
                                tok_path)
  for path, split in ((train_path, train), (heldout_path, heldout)):
    rows = pack_documents([tokenizer.encode(d["text"]) for d in split], data_config.seq_len,
                          tokenizer.eos_id, tokenizer.pad_id, tokenizer.bos_id)
    save_rows(path, rows)
  with open(manifest_path + ".tmp", "w", encoding="utf-8") as f:
    json.dump(manifest, f, indent=2)
  os.replace(manifest_path + ".tmp", manifest_path)  # written last: marks the data complete
  return tokenizer, load_rows(train_path), load_rows(heldout_path)
