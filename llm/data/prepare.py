"""From a named text source to a trained tokenizer and packed train/held-out rows in the workdir.

Outputs are cached (tokenizer.model, train/ and heldout/ array_record folders) with a manifest
of the data config that made them, so a resumed run reuses exactly the same token data, and a
changed data config on the same workdir is an error rather than a silent reuse.

Train documents may get fill-in-the-middle (data.fim_rate) and chat-templated conversations
mixed in at data.instruction_share of the characters.
"""

import json
import logging
import os

from llm.data.curation.heldout import is_heldout
from llm.data.curation.mixture import add_replay
from llm.data.curation.packaged import sharegpt_conversations
from llm.data.curation.sources import load_documents
from llm.data.tokenize_pack import PackSettings, PackedRows, tokenize_and_pack
from llm.io import write_json_atomic
from llm.tokenizer import load_tokenizer, train_tokenizer


def instruction_conversations(source: str, share: float, pretraining_chars: int) -> list:
  """Conversations making up `share` of all characters next to `pretraining_chars`."""
  if share <= 0:
    return []
  if source != "sharegpt":
    raise ValueError(f"data.instruction_source={source!r}: only 'sharegpt' is packaged")
  budget, chosen, size = share / (1 - share) * pretraining_chars, [], 0
  for conversation in sharegpt_conversations():
    if size >= budget:
      break
    chosen.append(conversation["turns"])
    size += sum(len(t["content"]) for t in conversation["turns"])
  return chosen


def training_documents(data_config) -> tuple[list[dict], list[str]]:
  """(train documents, held-out texts) of data.source; with data.replay_share, general data
  from data.replay_source is mixed into the train documents (marked meta["replay"])."""
  only = tuple(s for s in data_config.curated_sources.split(",") if s)
  docs = load_documents(data_config.source, data_config.max_chars, only)
  heldout = [d["text"] for d in docs if is_heldout(d["id"], data_config.heldout_fraction)]
  train_docs = [d for d in docs if not is_heldout(d["id"], data_config.heldout_fraction)]
  if data_config.replay_share:  # general data against forgetting, through the data mixture
    replay = [d for d in load_documents(data_config.replay_source, data_config.max_chars)
              if not is_heldout(d["id"], data_config.heldout_fraction)]
    train_docs = add_replay([dict(d, meta=d.get("meta", {})) for d in train_docs], replay,
                            data_config.replay_share, seed=0)
    logging.info("replay: %d of %d train documents from %s",
                 sum(d["meta"].get("replay", False) for d in train_docs), len(train_docs),
                 data_config.replay_source)
  return train_docs, heldout


def prepare_lm_data(data_config, workdir: str):
  """Returns (tokenizer, train_rows: PackedRows, heldout_rows: dict of arrays), building
  whatever the workdir lacks."""
  data_dir = os.path.join(workdir, "data")
  os.makedirs(data_dir, exist_ok=True)
  tok_path = data_config.tokenizer_path or os.path.join(data_dir, "tokenizer.model")
  train_dir, heldout_dir = os.path.join(data_dir, "train"), os.path.join(data_dir, "heldout")
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
    return (load_tokenizer(tok_path), PackedRows(train_dir),
            PackedRows(heldout_dir).to_arrays())

  train_docs, heldout = training_documents(data_config)
  train = [d["text"] for d in train_docs]
  if not heldout or not train:
    raise ValueError(f"data.heldout_fraction={data_config.heldout_fraction} left "
                     f"{len(train)} train and {len(heldout)} held-out documents; both must be > 0")
  logging.info("documents: %d train, %d held-out (%d train chars)", len(train), len(heldout),
               sum(map(len, train)))
  if os.path.exists(tok_path):
    tokenizer = load_tokenizer(tok_path)
  else:
    tokenizer = train_tokenizer(train, data_config.tokenizer_vocab_size, tok_path,
                                model_type=data_config.tokenizer_type)
  chats = instruction_conversations(data_config.instruction_source,
                                    data_config.instruction_share, sum(map(len, train)))
  settings = PackSettings(data_config.seq_len, data_config.fim_rate, data_config.fim_spm_rate,
                          seed=0)
  for folder, items, fim in ((train_dir, train + chats, True), (heldout_dir, heldout, False)):
    packed = tokenize_and_pack(items, tok_path, folder,
                               settings if fim else PackSettings(data_config.seq_len),
                               shards=8, workers=data_config.pack_workers)
    logging.info("%s: %d rows of %d, packing efficiency %.3f, layouts %s", folder,
                 packed["rows"], data_config.seq_len, packed["packing_efficiency"],
                 packed["layouts"])
  write_json_atomic(manifest_path, manifest, indent=2)  # written last: marks the data complete
  return tokenizer, PackedRows(train_dir), PackedRows(heldout_dir).to_arrays()
