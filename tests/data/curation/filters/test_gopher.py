"""Gopher quality and repetition rules: one document per rule that breaks that rule alone."""

import pytest

from llm.data.curation.filters import text_stats
from llm.data.curation.filters.gopher import (GopherQualityConfig, gopher_quality,
                                              gopher_quality_reasons, gopher_repetition,
                                              gopher_repetition_reasons)
from llm.data.curation.sources import load_documents

# Clean prose that every Gopher, C4 and FineWeb rule keeps; the other filter tests reuse it.
BASE = """\
The old harbour town wakes slowly in the winter months.
Fishing boats leave before dawn, and their lights move across the water like small stars.
By the time the bakery opens, most of the crews are already far from the coast.

Visitors often arrive with a plan to see the lighthouse and then leave.
Many of them stay longer than they expected, because the narrow streets reward a patient walker.
A quiet museum near the church explains how the town survived two great storms.

Local families have kept the same market stalls for generations.
They sell smoked fish, wool blankets and honey from the hills behind the bay.
Prices are fair, and the traders are happy to talk about the weather with anyone who stops.

In the evening the wind usually drops.
People gather at the long wooden pier to watch the boats return with their catch.
It is a simple routine, yet it gives the whole community a steady rhythm that newcomers soon \
learn to share."""

CHINESE = """\
今年冬天，沿海小城的渔民比往年更早出海。天还没亮，码头上就已经灯火通明，船只一艘接一艘驶向远处的渔场。
当地政府表示，新建的防波堤已经完工，可以抵御更强的风浪。许多居民认为，这项工程让他们在暴风雨季节更加安心。
与此同时，老城区的集市也迎来了不少游客。商贩们出售熏鱼、羊毛毯和山上采来的蜂蜜，价格公道，生意兴隆。
傍晚时分，人们聚集在长长的木栈桥上，等待渔船满载而归。这种简单的日常，让整个社区保持着稳定的节奏。"""

LINES = BASE.split("\n")  # index 0..14; 3, 7 and 11 are the blank lines between paragraphs

URL_1 = ("https://harbour-town.example/archive/2023/winter/the-great-storm-of-1998-a-full-report-"
         "with-photographs-maps-tide-records-and-interviews-with-the-lifeboat-crews.html")
URL_2 = ("https://harbour-town.example/archive/2023/spring/restoring-the-lighthouse-lantern-room-"
         "a-volunteer-diary-in-twelve-parts-with-drawings-and-a-list-of-donors.html")


def lines_after(inserts: dict[int, str]) -> str:
  """BASE with text inserted as new lines after the given line indices."""
  return "\n".join(line + (f"\n{inserts[i]}" if i in inserts else "")
                   for i, line in enumerate(LINES))


def appended(additions: dict[int, str]) -> str:
  """BASE with text added to the end of the given lines."""
  return "\n".join(line + (f" {additions[i]}" if i in additions else "")
                   for i, line in enumerate(LINES))


def in_varied_context(phrase: str, times: int) -> str:
  """BASE with sentences that use `phrase` between different words each time."""
  frames = [("Ask at", "before sailing."), ("Phone", "for permits."),
            ("Maps hang inside", "near the door."), ("Tide tables come from", "every morning."),
            ("Lost keys go to", "without delay."), ("Visitors can write to", "about moorings."),
            ("Every skipper registers with", "each spring."), ("Storm warnings reach", "by radio."),
            ("Fishing licences require", "stamped approval."),
            ("Divers must notify", "in writing."), ("Anglers seldom visit", "on Sundays."),
            ("Children love", "at Christmas.")]
  targets = [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14]
  return appended({i: f"{a} {phrase} {b}" for (a, b), i in zip(frames[:times], targets)})


def test_base_document_passes():
  assert gopher_quality_reasons(BASE) == []
  assert gopher_repetition_reasons(BASE) == []


STOP_WORD_FREE = (
    "Rain fell over quiet hills all night. Farmers woke early, fed hungry goats, then walked "
    "into wet fields where barley grew tall. Children ran along muddy lanes, laughing at "
    "puddles. Later, bright sunshine dried every roof in our village, so neighbours opened "
    "windows, hung washing outside, baked bread for supper, told stories until midnight.")

QUALITY_CASES = {
    "word_count": "\n".join(LINES[:3]),
    "mean_word_length": " ".join(["I am at the top of it and so is he, as we go on."] * 6),
    "symbol_word_ratio": BASE + "\n" + " ".join(
        f"#{tag}" for tag in ("harbour winter boats fishing bakery lighthouse museum church "
                              "market honey wool pier catch storms coast bay hills travel sea "
                              "village").split()),
    "bullet_lines": "\n".join(f"- {line}" if line else "" for line in LINES),
    "ellipsis_lines": "\n".join(line[:-1] + "..." if i in (0, 2, 5, 9, 13) else line
                                for i, line in enumerate(LINES)),
    "alpha_words": BASE + "\nTide heights in centimetres: " + " ".join(
        str(100 + 7 * i) for i in range(45)),
    "stop_words": STOP_WORD_FREE,
}


@pytest.mark.parametrize("rule", sorted(QUALITY_CASES))
def test_each_quality_rule_alone(rule):
  text = QUALITY_CASES[rule]
  assert gopher_quality_reasons(text) == [f"gopher_quality:{rule}"]
  assert gopher_quality(text) == f"gopher_quality:{rule}"


def test_too_many_and_too_long_words():
  assert gopher_quality("\n\n".join([BASE] * 600)) == "gopher_quality:word_count"
  long_words = " ".join(["the", "extraordinarily", "and", "incomprehensibilities"] * 15)
  assert gopher_quality_reasons(long_words) == ["gopher_quality:mean_word_length"]


def test_stop_words_count_distinct_words():
  assert gopher_quality(STOP_WORD_FREE + " The the the.") == "gopher_quality:stop_words"
  assert gopher_quality(STOP_WORD_FREE + " The end of it.") is None


def test_thresholds_come_from_the_config():
  config = GopherQualityConfig(min_words=10, min_stop_words=0)
  assert gopher_quality(QUALITY_CASES["word_count"], config=config) is None
  assert gopher_quality(STOP_WORD_FREE, config=config) is None


SEASONAL = "Seasonal ferry timetables change dramatically."
SAILORS = "Experienced sailors respect sudden squalls."
NAVIGATORS = "Knowledgeable navigators strongly recommend consulting meteorologists."


def repeated_phrase(phrase: str) -> str:
  """BASE with one phrase added twice, at lines whose neighbours differ."""
  return appended({0: phrase, 9: phrase})


REPETITION_CASES = {
    # Seven copies of a short line: many duplicate lines, few duplicate characters.
    "dup_line_fraction": lines_after({i: "Read more." for i in (0, 2, 4, 6, 8, 10, 12)}),
    # One-word paragraphs repeated: a third of paragraphs, hardly any characters.
    "dup_para_fraction": lines_after({2: "\nAdvertisement.\n", 6: "\nAdvertisement.\n",
                                      10: "\nAdvertisement.\n", 14: "\nAdvertisement."}),
    # Two long one-word lines, each repeated inside a paragraph: many characters, few lines.
    "dup_line_char_fraction": lines_after({1: URL_1, 4: URL_2, 8: URL_1, 13: URL_2}),
    "top_2gram": in_varied_context("Harbourmaster's Headquarters", 12),
    "top_3gram": in_varied_context("Northumberland granite lighthouse", 10),
    "top_4gram": in_varied_context("ancient granite signal tower", 11),
    "dup_5gram": appended({0: SEASONAL, 4: SAILORS, 9: SEASONAL, 13: SAILORS}),
    # Each phrase has exactly n words, sized so the duplicated share lies between the
    # thresholds for n and n - 1.
    "dup_6gram": repeated_phrase(NAVIGATORS),
    "dup_7gram": repeated_phrase("Experienced navigators recommend checking marine weather "
                                 "forecasts."),
    "dup_8gram": repeated_phrase("Seasonal ferry timetables usually change during early "
                                 "autumn."),
    "dup_9gram": repeated_phrase("Ferry timetables change once or twice during each autumn."),
    "dup_10gram": repeated_phrase("Ferry times may change once or twice in the early autumn."),
}


@pytest.mark.parametrize("rule", list(REPETITION_CASES))
def test_each_repetition_rule_alone(rule):
  text = REPETITION_CASES[rule]
  assert gopher_repetition_reasons(text) == [f"gopher_repetition:{rule}"]
  assert gopher_repetition(text) == f"gopher_repetition:{rule}"
  assert gopher_quality(text) is None


def test_duplicate_paragraph_characters():
  # Every copy of a paragraph is made of repeated lines, so the line-character rule always
  # fires with this one; the paragraph rule is checked first and names the cause.
  text = lines_after({2: f"\n{URL_1}", 6: f"\n{URL_2}\n\n{URL_1}", 10: f"\n{URL_2}"})
  assert gopher_repetition_reasons(text) == ["gopher_repetition:dup_para_char_fraction",
                                             "gopher_repetition:dup_line_char_fraction"]
  assert gopher_repetition(text) == "gopher_repetition:dup_para_char_fraction"


def test_ngram_fractions_count_overlaps_once():
  words = ["a"] * 10
  assert text_stats.top_ngram_char_fraction(words, 2) == 1.0
  assert text_stats.duplicate_ngram_char_fraction(words, 5) == 1.0
  assert text_stats.top_ngram_char_fraction(["a", "b", "c"], 2) == 0.0


def _naive_fraction(words, n, top_only):
  """Reference: n-gram tuples counted in a dict; characters of covered word positions."""
  grams = [tuple(words[i:i + n]) for i in range(len(words) - n + 1)]
  counts = {}
  for gram in grams:
    counts[gram] = counts.get(gram, 0) + 1
  if top_only:
    best = max(counts.values(), default=0)
    wanted = {next(g for g in grams if counts[g] == best)} if best > 1 else set()
  else:
    wanted = {g for g, c in counts.items() if c > 1}
  covered = set()
  for i, gram in enumerate(grams):
    if gram in wanted:
      covered.update(range(i, i + n))
  total = sum(len(w) for w in words)
  return sum(len(words[i]) for i in covered) / total if total else 0.0


def test_ngram_fractions_match_a_naive_count():
  import random
  rng = random.Random(0)
  for trial in range(60):
    vocab = ["a", "bb", "ccc", "dd", "e", "ffff", "g"][:rng.randint(1, 7)]
    words = [rng.choice(vocab) for _ in range(rng.randint(0, 60))]
    repetition = text_stats.NgramRepetition(words)
    for n in range(2, 11):
      assert repetition.top_fraction(n) == pytest.approx(_naive_fraction(words, n, True))
      assert repetition.duplicate_fraction(n) == pytest.approx(_naive_fraction(words, n, False))


@pytest.mark.parametrize("text", ["", "   \n\n  "])
def test_empty_text_has_a_reason(text):
  assert gopher_quality(text) == "gopher_quality:empty"
  assert gopher_repetition(text) == "gopher_repetition:empty"


def test_chinese_counts_characters_and_skips_english_rules():
  words = text_stats.split_words(CHINESE, "zh")
  assert len(words) > 150 and "，" not in words and "。" not in words
  assert gopher_quality_reasons(CHINESE, "zh") == []
  assert gopher_repetition_reasons(CHINESE, "zh") == []
  # Read as English, the same text is four "words" long.
  assert "gopher_quality:word_count" in gopher_quality_reasons(CHINESE, "en")


def test_shakespeare_passes_the_quality_rules():
  docs = load_documents("shakespeare", 50_000)
  assert docs
  for doc in docs:
    assert gopher_quality(doc["text"]) is None, doc["id"]
    reason = gopher_repetition(doc["text"])
    # Speaker names ("HELENA.") repeat as lines in dialogue-heavy scenes.
    assert reason in (None, "gopher_repetition:dup_line_fraction"), doc["id"]


def test_real_chinese_news_is_not_dropped_by_character_ngram_rules():
  docs = load_documents("peoples_daily", 100_000)
  dropped = [d["id"] for d in docs if gopher_repetition(d["text"], "zh") is not None]
  assert len(dropped) <= 0.05 * len(docs), dropped
