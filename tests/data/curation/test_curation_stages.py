"""Normalisation, language ID, blocklist, mixture and the report writer."""

import collections
import json

import pytest
from ml_collections import ConfigDict

from llm.data.curation.blocklist import blocklist_reason
from llm.data.curation.document import make_document
from llm.data.curation.langid import identify_language
from llm.data.curation.mixture import language_shares, sample_mixture
from llm.data.curation.normalize import normalize_document, normalize_text
from llm.data.curation.stats import CurationStats, estimate_tokens, write_report


def test_repair_text_equals_ftfy_line_by_line_on_real_and_broken_text():
  import ftfy
  from llm.data.curation.normalize import _FTFY, repair_text
  from llm.data.curation.sources import load_documents
  texts = [d["text"] for name in ("shakespeare", "peoples_daily", "chatterbot", "sharegpt")
           for d in load_documents(name, 60_000)]
  texts += ["caf\u00c3\u00a9 ok\nline two &amp; three", "x\u2028y\x85z\r\nw", "\ufeffBOM\x80\x9f",
            "A\u030a < b &lt; c\n&gt; d", "\x1b[31mred\x1b[0m \u00e2\u20ac\u0153quoted\u00e2\u20ac\x9d",
            "ﬁ “quotes” ！ 全角", "e\u0301\ne\u0301", "中文\u206a x\ufffa", "é\x00\x1f\x7f ok",
            "\u00e9t\u00e9 \r\n\u2029"]
  for text in texts:
    assert repair_text(text) == ftfy.fix_text(text, _FTFY), text[:80]


def test_mojibake_prefilter_never_hides_bad_text():
  import random
  import ftfy.badness
  from llm.data.curation.normalize import _MAYBE_MOJIBAKE
  rng = random.Random(0)
  pool = "".join(map(chr, range(0x20, 0x3000)))  # Latin, Greek, Cyrillic, symbols, box, CJK
  samples = ["".join(rng.choice(pool) for _ in range(rng.randint(2, 6))) for _ in range(60000)]
  samples += [s.encode("utf-8").decode(encoding, errors="replace")  # real mojibake
              for s in ("café “quoted” — naïve", "Привет мир", "日本語のテキスト", "ΑΒΓ αβγ")
              for encoding in ("latin-1", "cp1252", "cp1251", "cp1253", "mac_roman")]
  bad = [s for s in samples if ftfy.badness.is_bad(s)]
  assert len(bad) >= 500
  assert all(_MAYBE_MOJIBAKE.search(s) for s in bad)


def test_normalize_repairs_mojibake_nfc_and_controls():
  assert normalize_text("caf\u00c3\u00a9\x00 A\u030a\r\nb\ud800") == "café Å\nb?"
  assert normalize_text("AT&amp;T \x1b[1mbold\x1b[0m") == "AT&T bold"
  kept_as_written = "今天很好！你呢？ “curly” ‘quotes’ ﬁne"
  assert normalize_text(kept_as_written) == kept_as_written
  doc, reason = normalize_document(make_document("x", "\ufffd" * 50 + "ok", "s"))
  assert reason == "normalize:broken_encoding"
  assert normalize_document(make_document("x", " \n\t", "s"))[1] == "normalize:empty"


@pytest.mark.parametrize("lang,text", [
    ("en", "The weather is lovely today, shall we walk along the river?"),
    ("de", "Das Wetter ist heute herrlich, sollen wir am Fluss spazieren gehen?"),
    ("fr", "Il fait très beau aujourd'hui, allons-nous nous promener au bord de la rivière ?"),
    ("es", "Hoy hace un tiempo precioso, ¿damos un paseo por la orilla del río?"),
    ("ru", "Сегодня прекрасная погода, может, прогуляемся вдоль реки?"),
    ("zh", "今天天气很好，我们去河边散步吧。"),
    ("ja", "今日はとても良い天気ですね。川沿いを散歩しませんか。"),
    ("it", "Oggi il tempo è bellissimo, facciamo una passeggiata lungo il fiume?"),
])
def test_language_id_on_sentences(lang, text):
  detected, score = identify_language(text)
  assert detected == lang and score > 0.5


def test_language_id_accuracy_on_packaged_dialogs():
  """Held-out dialog turns (>= 20 chars) of 8 languages: accuracy per language."""
  from experiments.bench.langid_accuracy import accuracy_by_language
  result = accuracy_by_language(min_chars=20)
  for lang in ("en", "zh", "ja", "de", "ru", "es", "fr", "it"):
    assert result[lang]["accuracy"] >= 0.9, (lang, result[lang])


def test_blocklist_by_source_domain_license_title():
  blocklist = ConfigDict({"sources": ["bad"], "domains": ["blocked.org"],
                          "licenses": ["disputed"], "titles": ["Leaked"]})
  doc = lambda source="ok", **meta: make_document("i", "t", source, **meta)
  assert blocklist_reason(doc("bad"), blocklist) == "blocklist:source"
  assert blocklist_reason(doc(domain="news.blocked.org"), blocklist) == "blocklist:domain"
  assert blocklist_reason(doc(domain="notblocked.org"), blocklist) is None
  assert blocklist_reason(doc(license="disputed"), blocklist) == "blocklist:license"
  assert blocklist_reason(doc(title="The leaked memo"), blocklist) == "blocklist:title"


def _corpus():
  docs = [make_document(f"en{i}", "word " * 10, "web", language="en") for i in range(90)]
  docs += [make_document(f"sw{i}", "neno " * 10, "web", language="sw") for i in range(10)]
  docs += [make_document(f"c{i}", "code " * 10, "code", language="code") for i in range(50)]
  return docs


def test_temperature_flattens_language_shares():
  assert language_shares({"en": 900, "sw": 100}, 1.0) == pytest.approx({"en": 0.9, "sw": 0.1})
  flat = language_shares({"en": 900, "sw": 100}, 1e9)
  assert flat == pytest.approx({"en": 0.5, "sw": 0.5}, abs=1e-6)


def test_mixture_follows_weights_and_budget_and_is_reproducible():
  docs = _corpus()
  per_doc = estimate_tokens("word " * 10)
  mix = sample_mixture(docs, {"web": 3.0, "code": 1.0}, 400 * per_doc, 1.0, seed=7)
  counts = collections.Counter(d["source"] for d in mix)
  assert counts["web"] == pytest.approx(300, abs=2) and counts["code"] == pytest.approx(100, abs=2)
  assert max(d["meta"]["epoch"] for d in mix if d["source"] == "code") == 1  # 50 docs, 2 epochs
  assert [d["id"] for d in mix] == [d["id"] for d in
                                    sample_mixture(docs, {"web": 3.0, "code": 1.0},
                                                   400 * per_doc, 1.0, seed=7)]
  flat = sample_mixture(docs, {"web": 1.0}, 100 * per_doc, 1e9, seed=0)
  langs = collections.Counter(d["meta"]["language"] for d in flat)
  assert langs["sw"] == pytest.approx(50, abs=2)


def test_report_lists_reasons_sources_and_languages(tmp_path):
  stats = CurationStats()
  stats.read["web"] = 3
  stats.drop(make_document("a", "t", "web"), "gopher_quality:word_count")
  stats.keep(make_document("b", "hello world", "web", language="en"))
  stats.events["pii:EMAIL"] = 2
  write_report(stats.as_dict(), str(tmp_path))
  report = (tmp_path / "report.md").read_text()
  assert "gopher_quality:word_count | 1" in report and "web/gopher_quality | 1" in report
  assert "- en: 1" in report and "pii:EMAIL: 2" in report
  assert json.loads((tmp_path / "stats.json").read_text())["kept_by_source"] == {"web": 1}


def test_replay_makes_up_its_share_of_tokens():
  from llm.data.curation.mixture import add_replay
  new = [make_document(f"n{i}", "word " * 10, "domain") for i in range(60)]
  general = [make_document(f"g{i}", "word " * 10, "general") for i in range(10)]
  mixed = add_replay(new, general, share=0.25, seed=0)
  replayed = [d for d in mixed if d["meta"].get("replay")]
  assert len(replayed) == 20 and {d["source"] for d in replayed} == {"general"}
  assert add_replay(new, general, 0.0, 0) is new
  with pytest.raises(ValueError, match="replay_share"):
    add_replay(new, general, 1.0, 0)
