"""FineWeb line filters: one document per rule that breaks that rule alone."""

import pytest

from llm.data.curation.filters import text_stats
from llm.data.curation.filters.fineweb import FineWebConfig, fineweb_filter, fineweb_reasons
from llm.data.curation.sources import load_documents
from tests.data.curation.filters.test_gopher import BASE, CHINESE, LINES

SHORT_LINES = ["Gulls circle.", "Nets dry.", "Bells ring twice.", "The tide turns.",
               "Smoke rises.", "A dog barks.", "Lamps glow."]

CASES = {
    "line_punct_ratio": "\n".join(line.rstrip(".") for line in LINES),
    "dup_line_char_ratio": BASE + "\n" + LINES[14] + "\n" + LINES[1],
    "short_line_ratio": "\n".join(LINES[:3] + SHORT_LINES),
}


def test_base_document_passes():
  assert fineweb_reasons(BASE) == []


@pytest.mark.parametrize("rule", list(CASES))
def test_each_rule_alone(rule):
  assert fineweb_reasons(CASES[rule]) == [f"fineweb:{rule}"]
  assert fineweb_filter(CASES[rule]) == f"fineweb:{rule}"


def test_thresholds_are_inclusive_where_the_paper_says_so():
  # Two of three lines short is 0.667 < 0.67; the rule needs at least 0.67.
  text = LINES[0] + "\nGulls circle.\nNets dry."
  assert fineweb_filter(text) is None
  assert fineweb_filter(text, config=FineWebConfig(max_short_line_ratio=0.6)) == (
      "fineweb:short_line_ratio")


@pytest.mark.parametrize("text", ["", "\n \n"])
def test_empty_text_has_a_reason(text):
  assert fineweb_filter(text) == "fineweb:empty"


def test_chinese_uses_chinese_punctuation_and_a_shorter_short_line():
  assert fineweb_reasons(CHINESE, "zh") == []
  # Read as English no line ends in punctuation.
  assert "fineweb:line_punct_ratio" in fineweb_reasons(CHINESE, "en")
  news_lines = "\n".join(["今年冬天，渔民们比往年更早出海。", "码头上灯火通明，船只陆续驶向渔场。",
                          "当地政府表示，新建的防波堤已经完工。", "老城区的集市迎来了不少外地游客。",
                          "傍晚时分，人们聚集在木栈桥上等待渔船。"])
  assert fineweb_reasons(news_lines, "zh") == []
  # Every line is under 30 characters, which the English threshold would call short.
  assert "fineweb:short_line_ratio" in fineweb_reasons(news_lines, "en")


def test_shakespeare_does_not_crash():
  known = {None, "fineweb:line_punct_ratio", "fineweb:dup_line_char_ratio",
           "fineweb:short_line_ratio"}
  for doc in load_documents("shakespeare", 50_000):
    assert fineweb_filter(doc["text"]) in known
    assert text_stats.split_lines(doc["text"])
