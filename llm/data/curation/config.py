"""The curation config: sources, which rules apply to which kind of text, dedup, mixture."""

import ml_collections

# Published web-text rules (Gopher, C4, FineWeb) assume web pages; applied to plays or
# dialogs they would drop nearly everything (short lines, few words), so rules go by kind.
DEFAULT_KINDS = {"shakespeare": "book", "peoples_daily": "news", "chinese_reviews": "review",
                 "chatterbot": "dialog", "chitchat": "dialog", "python_stdlib": "code",
                 "sharegpt": "dialog"}
DEFAULT_RULES = {
    "web": ("gopher_quality", "gopher_repetition", "c4", "fineweb"),
    "news": ("gopher_repetition", "fineweb"),
    "book": ("gopher_repetition",),
    "review": (),
    "dialog": (),
    "code": ("code",),
}


def default_curation_config() -> ml_collections.ConfigDict:
  """Sequence-valued fields are tuples, which flags can set (ml_collections refuses lists):
  --config.inputs="('jsonl:a.jsonl', 'text:docs')", --config.rules.web="('c4',)"."""
  c = ml_collections.ConfigDict()
  c.sources = {"shakespeare": 2_000_000}    # packaged source name -> max characters read
  c.inputs = ()                             # extra files: "jsonl:PATH", "warc:PATH", ...
  c.kinds = dict(DEFAULT_KINDS)             # source -> kind; unknown sources are "web"
  c.rules = dict(DEFAULT_RULES)
  c.executor = "local"                      # "local" (process pool) or "ray"
  c.ray_address = ""                        # "" starts a local Ray; "auto" joins a cluster
  c.workers = 2
  c.read_shards = 8                         # units per packaged source handed to workers
  c.langid = ml_collections.ConfigDict({"min_score": 0.5, "keep": ()})
  c.pii = True
  # Model-based quality: per-character perplexity under an n-gram model of a clean reference
  # source; within each listed kind, documents above the keep_percentile-th percentile go.
  c.model_quality = ml_collections.ConfigDict(
      {"kinds": (), "reference_source": "shakespeare", "reference_chars": 1_000_000,
       "order": 5, "keep_percentile": 95.0})
  c.blocklist = ml_collections.ConfigDict(
      {"sources": (), "domains": (), "licenses": (), "titles": ()})
  c.dedup = ml_collections.ConfigDict(
      {"exact": True, "near": True, "ngram": 5, "bands": 14, "rows": 8,
       "threshold": 0.7, "seed": 1234})
  c.mixture = ml_collections.ConfigDict(
      {"weights": {}, "token_budget": 0, "temperature": 1.0, "seed": 0,
       # general data mixed in as this share of tokens, e.g. "curated:runs/base" or a source
       "replay_source": "", "replay_chars": 10_000_000, "replay_share": 0.0})
  c.docs_per_shard = 2000
  return c
