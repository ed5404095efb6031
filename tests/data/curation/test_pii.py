"""PII scrubbing: unit cases per type, and span-level recall/precision on a labelled corpus.

Run `python -m tests.data.curation.test_pii` for the per-type table on 2000 generated samples.
"""

import collections
import re

import pytest

from llm.data.curation.document import make_document
from llm.data.curation.pii import PLACEHOLDERS, TYPES, find_pii, scrub_document, scrub_pii
from tests.data.curation.pii_corpus import generate


def _only(text):
  """The types found in `text` when it must be a single whole match, else None."""
  spans = find_pii(text)
  return spans[0][2] if spans == [(0, len(text), spans[0][2])] else None


@pytest.mark.parametrize("text", [
    "jane.doe@example.com", "j.r.r.tolkien+books@mail.eng.example.co.uk",
    "Info_2024@uni-example.edu", "first-last%x@sub.example.io"])
def test_email_positive(text):
  assert _only(text) == "email"
  assert scrub_pii(f"mail <{text}>.") == ("mail <<EMAIL>>.", dict(email=1, phone=0, ipv4=0, ipv6=0))


@pytest.mark.parametrize("text", [
    "user@localhost", "a..b@example.com", "@example.com", "name@", "x@y.c"])
def test_email_negative(text):
  assert "email" not in [t for _, _, t in find_pii(text)]


@pytest.mark.parametrize("text", [
    "+1 415-555-0132", "(415) 555-0132", "415.555.0132", "1-415-555-0132", "+1 (415) 555-0132",
    "+44 20 7946 0958", "020 7946 0958", "+44 (0)20 7946 0958", "07700 900123",
    "+49 30 12345678", "030 12345678", "0049 30 12345678",
    "+33 1 23 45 67 89", "01 23 45 67 89", "01.23.45.67.89", "01\u00a023\u00a045\u00a067\u00a089",
    "+91 98765 43210", "98765 43210", "+86 138 0013 8000", "138-0013-8000",
    "+81 3-1234-5678", "03-1234-5678", "+55 11 91234-5678", "(11) 91234-5678", "+14155550132",
    "+39 06 6988 3111", "+7 495 123-45-67"])
def test_phone_positive(text):
  assert _only(text) == "phone", text
  assert scrub_pii(f"Tel: {text}, thanks")[0] == "Tel: <PHONE>, thanks"


@pytest.mark.parametrize("text", [
    "2024-01-15", "15.01.2024", "05.01.2024 14 Uhr", "12:30:45", "2024-01-15T12:30:45Z",
    "$1,299.99", "1,234,567", "12 500 000", "1 200 000 000", "6 099 941 512", "8 009 035 532",
    "v2.3.1",
    "120.0.6099.129",
    "ISBN 978-3-16-148410-0", "ISBN 0-306-40615-2", "9783161484100", "Order 2024-000123",
    "#48151623",
    "48.8566, 2.3522", "-33.8688, 151.2093", "SSN 123-45-6789", "card 5500 0000 0000 0004",
    "DE89 3704 0044 0532 0130 00", "population 1234567", "1 2 3 4 5 6 7 8 9"])
def test_phone_negative(text):
  assert find_pii(text) == [], text


@pytest.mark.parametrize("text", [
    "192.168.0.1", "10.0.0.255", "0.0.0.0", "255.255.255.255", "8.8.8.8"])
def test_ipv4_positive(text):
  assert _only(text) == "ipv4"
  assert scrub_pii(f"from {text}:8080.")[0] == "from <IPV4>:8080."


@pytest.mark.parametrize("text", [
    "1.2.3", "2.0.1.4.5", "256.1.1.1", "1.2.3.999", "01.02.03.04", "version 1.2.3.4", "v1.2.3.4",
    "build 10.0.19041.1", "3.14.15.92.65", "Figure 1.2.3.4", "see section 3.5.2.1"])
def test_ipv4_negative(text):
  assert find_pii(text) == [], text


@pytest.mark.parametrize("text", [
    "2001:0db8:85a3:0000:0000:8a2e:0370:7334", "2001:db8:0:0:1:0:0:1", "2001:db8::1", "2001:db8::",
    "FE80::1FF:FE23:4567:890A", "fe80::1ff:fe23:4567:890a%eth0", "::ffff:192.0.2.128",
    "0:0:0:0:0:ffff:10.1.2.3", "64:ff9b::198.51.100.7"])
def test_ipv6_positive(text):
  assert _only(text) == "ipv6"
  assert scrub_pii(f"[{text}]:443")[0] == "[<IPV6>]:443"


@pytest.mark.parametrize("text", [
    "12:30:45", "00:1a:2b:3c:4d:5e", "x[1::2]", "std::vector", "a::b", "2001:db8:::1",
    "1:2:3:4:5:6:7:8:9", "2001:db8::g1", "16:9", "::1"])
def test_ipv6_negative(text):
  assert find_pii(text) == [], text


def test_whole_match_is_replaced_and_trailing_punctuation_kept():
  text = "Mail j.doe@example.com, call +44 (0)20 7946 0958. Hosts 10.0.0.1 and 2001:db8::1: down"
  out, counts = scrub_pii(text)
  assert out == "Mail <EMAIL>, call <PHONE>. Hosts <IPV4> and <IPV6>: down"
  assert counts == {"email": 1, "phone": 1, "ipv4": 1, "ipv6": 1}


def test_empty_and_surrogates_do_not_crash():
  assert scrub_pii("") == ("", dict.fromkeys(TYPES, 0))
  raw = b"\xff\xfe caf\xc3 a@example.com \xed\xa0\x80 10.0.0.1"
  out, counts = scrub_pii(raw.decode("utf-8", "surrogateescape"))
  assert out.endswith(" <EMAIL> \udced\udca0\udc80 <IPV4>")
  assert counts["email"] == counts["ipv4"] == 1
  assert scrub_pii("\ud800\udfff lone surrogates \ud83d")[1] == dict.fromkeys(TYPES, 0)


def test_scrub_document_records_nonzero_counts_only():
  doc = make_document("d1", "write to a@example.com or b@example.org", "web", license="cc-by")
  out = scrub_document(doc)
  assert out["text"] == "write to <EMAIL> or <EMAIL>"
  assert out["meta"] == {"license": "cc-by", "pii": {"email": 2}}
  assert doc["text"].startswith("write to a@") and "pii" not in doc["meta"]  # input untouched
  clean = scrub_document(make_document("d2", "nothing here", "web"))
  assert clean["text"] == "nothing here" and "pii" not in clean["meta"]


def _render(text, spans):
  out, pos = [], 0
  for s, e, kind in spans:
    out += (text[pos:s], PLACEHOLDERS[kind])
    pos = e
  return "".join(out) + text[pos:]


def measure(n=2000, seed=0, show=True):
  """Span-level recall and precision per type on `n` generated samples.

  `find_pii` gives the original offsets of exactly the regions `scrub_pii` replaces; every sample
  checks this by rendering those spans and comparing with `scrub_pii`'s text and counts. A planted
  span is found only if a predicted span has the same (start, end, type), so a replacement that
  is too short (leaving characters behind), too long (eating context) or mistyped is both a
  miss and a false positive. Precision is exact matches over all predicted spans of the type.
  """
  planted, predicted, correct = collections.Counter(), collections.Counter(), collections.Counter()
  misses, false_pos = [], []
  for sample in generate(n, seed):
    spans = find_pii(sample.text)
    out, counts = scrub_pii(sample.text)
    assert out == _render(sample.text, spans), sample.text
    assert counts == {t: sum(k == t for *_, k in spans) for t in TYPES}
    gold = set(sample.spans)
    for span, form in zip(sample.spans, sample.forms):
      planted[span[2]] += 1
      correct[span[2]] += span in spans
      if span not in spans:
        misses.append((form, sample.text[span[0]:span[1]]))
    for span in spans:
      predicted[span[2]] += 1
      if span not in gold:
        false_pos.append((span[2], sample.text[max(0, span[0] - 15):span[1] + 15]))
  stats = {}
  for t in (*TYPES, "all"):
    p = sum(planted.values()) if t == "all" else planted[t]
    q = sum(predicted.values()) if t == "all" else predicted[t]
    c = sum(correct.values()) if t == "all" else correct[t]
    stats[t] = {"planted": p, "predicted": q, "recall": c / max(p, 1), "precision": c / max(q, 1)}
  if show:
    print(f"{'type':6} {'planted':>8} {'predicted':>9} {'recall':>7} {'precision':>9}")
    for t, s in stats.items():
      print(f"{t:6} {s['planted']:8d} {s['predicted']:9d} {s['recall']:7.4f} {s['precision']:9.4f}")
  return stats, misses, false_pos


def test_labelled_corpus_recall_and_precision():
  stats, misses, false_pos = measure(n=600, seed=1)
  assert stats["all"]["planted"] >= 600
  for t in TYPES:
    assert stats[t]["planted"] >= 30, t
    assert stats[t]["recall"] >= 0.99, (t, misses[:10])
    assert stats[t]["precision"] >= 0.95, (t, false_pos[:10])


def test_long_digit_and_colon_runs_stay_linear():
  for text in ("1 " * 20000, "12:" * 20000, "1." * 20000, "+1 " * 20000, "a." * 20000 + "@"):
    assert find_pii(text) == []


def test_no_placeholder_keeps_characters_of_the_original():
  """Every alphanumeric run (3+ chars) of a planted value is gone, unless it also occurs
  outside the planted values (a distractor date may share "2024" with a phone number), and no
  placeholder touches a leftover letter, digit or "+" of the value it replaced."""
  touching = re.compile(r"[A-Za-z0-9+]<(?:EMAIL|PHONE|IPV4|IPV6)>|<(?:EMAIL|PHONE|IPV4|IPV6)>\w")
  for sample in generate(300, seed=2):
    out, _ = scrub_pii(sample.text)
    assert not touching.search(out), out
    bounds = [0] + [x for s, e, _ in sample.spans for x in (s, e)] + [len(sample.text)]
    residual = "\0".join(sample.text[a:b] for a, b in zip(bounds[::2], bounds[1::2]))
    for s, e, _ in sample.spans:
      for run in re.findall(r"[A-Za-z0-9]{3,}", sample.text[s:e]):
        if run not in residual:
          assert run not in out, (run, sample.text, out)


if __name__ == "__main__":
  _, misses, false_pos = measure()
  for title, rows in (("misses", misses), ("false positives", false_pos)):
    if rows:
      print(f"\n{title} (first 20):")
      for row in rows[:20]:
        print(" ", row)
