"""The curation run end to end on packaged real text plus planted web, PII and duplicates."""

import gzip
import json

import pytest

from llm.data.curation.config import default_curation_config
from llm.data.curation.curate import curate
from tests.data.curation.test_readers import write_warc


def _config(tmp_path, workers=1):
  c = default_curation_config()
  c.sources = {"shakespeare": 150_000, "chatterbot": 30_000, "python_stdlib": 150_000,
               "peoples_daily": 60_000}
  jsonl = tmp_path / "web.jsonl"
  page = ("If anything arrives damaged, write to our support team at help.desk@example.com "
          "or call +44 20 7946 0958 on weekdays, and we will send a replacement quickly.")
  story = ("The harbour was quiet in the early morning, and the fishing boats rocked gently "
           "against the old stone pier. Gulls circled above the market while traders set out "
           "crates of ice and argued about the weather. By seven the first trawler came in, low "
           "in the water, and a small crowd gathered to see what the night had brought. The "
           "catch was good: mackerel, a few bass and more crabs than anyone expected. Prices "
           "fell within the hour, and by noon the square was empty again except for the cats. "
           "Later that afternoon the harbour master walked the length of the pier, checking "
           "ropes and writing notes in a battered book that had outlived three of his "
           "predecessors.")
  shop = ("Our workshop builds wooden chairs and tables by hand from oak grown in the hills "
          "north of the town. Every piece is sanded, oiled and checked twice before it leaves, "
          "and we keep a record of the tree each plank came from. Orders usually take three "
          "weeks, longer in winter when the drying sheds are full. Visitors are welcome on "
          "Saturdays. Please park by the gate.")
  records = [{"id": "pii", "text": shop + " " + page, "license": "CC-BY-4.0"},
             {"id": "copy1", "text": story}, {"id": "copy2", "text": story.upper()},
             {"id": "disputed", "text": story + " The book was never found.", "license": "disputed"}]
  jsonl.write_text("\n".join(json.dumps(r) for r in records) + "\n{not json\n")
  warc = tmp_path / "crawl.warc.gz"
  write_warc(warc, ["https://news.example.com/a", "https://spam.blocked.org/b"])
  c.inputs = [f"jsonl:{jsonl}", f"warc:{warc}"]
  c.kinds = dict(c.kinds, web="web", crawl="web")
  c.blocklist.domains = ["blocked.org"]
  c.blocklist.licenses = ["disputed"]
  c.workers = workers
  return c


def test_curation_run_removes_and_reports_each_reason(tmp_path):
  stats = curate(_config(tmp_path), str(tmp_path / "out"))
  removed = stats["removed"]
  assert removed["jsonl:bad_json"] == 1
  assert removed["blocklist:domain"] == 1 and removed["blocklist:license"] == 1
  assert removed["dedup:exact"] >= 1  # copy2 is copy1 in capitals
  assert not any(reason.startswith("error:") for reason in removed), removed
  assert stats["events"]["pii:email"] == 1 and stats["events"]["pii:phone"] == 1
  kept = set(stats["kept_by_source"])
  assert {"shakespeare", "chatterbot", "python_stdlib", "peoples_daily", "web"} <= kept
  assert {"en", "zh", "code"} <= set(stats["kept_by_language"])
  docs = []
  for shard in sorted((tmp_path / "out").glob("shard-*.jsonl.gz")):
    with gzip.open(shard, "rt", encoding="utf-8") as f:
      docs += [json.loads(line) for line in f]
  assert len(docs) == stats["mixture"]["documents"]
  assert all(d["meta"].get("license") for d in docs)
  pii_doc = next(d for d in docs if d["id"] == "pii")
  assert "help.desk@example.com" not in pii_doc["text"] and "<EMAIL>" in pii_doc["text"]
  report = (tmp_path / "out" / "report.md").read_text()
  assert "blocklist:domain" in report and "dedup:exact" in report


def test_two_workers_give_the_same_output_as_one(tmp_path):
  one = curate(_config(tmp_path), str(tmp_path / "one"))
  two = curate(_config(tmp_path, workers=2), str(tmp_path / "two"))
  for key in ("removed", "kept_by_source", "kept_by_language", "events", "mixture"):
    assert one[key] == two[key], key
  shard = "shard-00000.jsonl.gz"
  assert gzip.open(tmp_path / "one" / shard).read() == gzip.open(tmp_path / "two" / shard).read()


def test_ray_executor_gives_the_same_output_as_local(tmp_path):
  pytest.importorskip("ray")
  local = curate(_config(tmp_path), str(tmp_path / "local"))
  config = _config(tmp_path, workers=2)
  config.executor = "ray"
  on_ray = curate(config, str(tmp_path / "ray"))
  for key in ("removed", "kept_by_source", "events", "mixture"):
    assert local[key] == on_ray[key], key
  shard = "shard-00000.jsonl.gz"
  assert (gzip.open(tmp_path / "local" / shard).read() ==
          gzip.open(tmp_path / "ray" / shard).read())


def test_unknown_executor_is_a_clear_error(tmp_path):
  config = _config(tmp_path)
  config.executor = "spark"
  with pytest.raises(ValueError, match="unknown executor 'spark'"):
    curate(config, str(tmp_path / "out"))


def test_model_quality_cut_drops_the_worst_percentile_of_a_kind(tmp_path):
  config = _config(tmp_path)
  config.model_quality.kinds = ["dialog"]
  config.model_quality.reference_chars = 200_000
  config.model_quality.keep_percentile = 90.0
  stats = curate(config, str(tmp_path / "out"))
  dropped = stats["removed"]["model_quality:perplexity"]
  dialogs = stats["kept_by_source"]["chatterbot"] + dropped
  assert 0.08 <= dropped / dialogs <= 0.12


def test_replay_source_is_mixed_into_the_output(tmp_path):
  config = default_curation_config()
  config.sources = {"python_stdlib": 100_000}
  config.mixture.replay_source, config.mixture.replay_share = "shakespeare", 0.5
  config.mixture.replay_chars = 200_000
  stats = curate(config, str(tmp_path))
  by_source = stats["mixture"]["documents_by_source"]
  assert by_source["python_stdlib"] == stats["kept_by_source"]["python_stdlib"]
  assert by_source["shakespeare"] > 0


def test_unknown_quality_rule_fails_before_any_work(tmp_path):
  config = _config(tmp_path)
  config.rules.web = ["gopher_quality", "perplexity_magic"]
  with pytest.raises(ValueError, match="config.rules.web: unknown quality rule 'perplexity_magic'"):
    curate(config, str(tmp_path / "out"))
  assert not (tmp_path / "out").exists()


def test_pipeline_near_dedup_drops_what_near_duplicates_drops(tmp_path):
  import collections
  import dataclasses
  from llm.data.curation.readers import read_jsonl
  from llm.data.curation.steps import process_document
  from llm.data.curation.dedup import EDITED_COPIES, near_duplicates
  from tests.data.curation.test_dedup import planted_corpus
  docs, planted = planted_corpus(n_docs=120, n_planted=40)
  (tmp_path / "planted.jsonl").write_text("\n".join(json.dumps(d) for d in docs))
  c = default_curation_config()
  c.sources, c.inputs = {}, [f"jsonl:{tmp_path / 'planted.jsonl'}"]
  c.workers = 2
  c.dedup.update(bands=EDITED_COPIES.bands, rows=EDITED_COPIES.rows,
                 threshold=EDITED_COPIES.threshold)
  stats = curate(c, str(tmp_path / "out"))
  records = read_jsonl(str(tmp_path / "planted.jsonl"), "planted", collections.Counter())
  after_stages = [out for d in records for out, reason, _ in [process_document(d, c)]
                  if reason is None]
  expected = near_duplicates(after_stages, dataclasses.replace(EDITED_COPIES, verify="minhash"))
  assert stats["removed"].get("dedup:near", 0) == len(expected)
  survivors = {d["id"] for d in after_stages}
  both_kept = {c for c, o in planted.items() if c in survivors and o in survivors}
  assert len(both_kept) >= 20 and len(set(expected) & both_kept) >= 0.95 * len(both_kept)
  kept = set()
  for shard in (tmp_path / "out").glob("shard-*.jsonl.gz"):
    with gzip.open(shard, "rt", encoding="utf-8") as f:
      kept |= {json.loads(line)["id"] for line in f}
  assert kept == {d["id"] for d in after_stages} - set(expected)
