"""PII scrubbing: e-mail addresses, phone numbers, IPv4 and IPv6 addresses.

A mapper stage (see `llm.data.curation.document`). Each match is replaced whole by a typed
placeholder, so no character of the original value survives, and the counts go to `meta["pii"]`.
Candidates come from loose regular expressions and are kept only after validation: octet
ranges for IPv4, `ipaddress` for IPv6, digit counts and national number shapes for phones.
"""

import bisect
import ipaddress
import re

TYPES = ("email", "phone", "ipv4", "ipv6")
PLACEHOLDERS = {"email": "<EMAIL>", "phone": "<PHONE>", "ipv4": "<IPV4>", "ipv6": "<IPV6>"}

# ASCII-only classes throughout: `\d` and `\w` would accept other scripts' digits, and CJK
# text often puts a number right after a letter with no space.
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![A-Za-z0-9-])")

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_IPV4 = re.compile(rf"(?<![A-Za-z0-9_.]){_OCTET}(?:\.{_OCTET}){{3}}(?![A-Za-z0-9_]|\.[0-9])")
# "version 1.2.3.4" and "Figure 1.2.3.4" are a version and a section number, not addresses.
_NOT_IP_BEFORE = re.compile(
    r"(?i)\b(?:version|ver\.?|v|release|build|rev\.?|fig(?:ure|\.)?|table|section|chapter|§)\s*$")

_IPV6 = re.compile(
    r"(?<![A-Za-z0-9_:.])(?:[0-9A-Fa-f]{0,4}:){2,7}"
    r"(?:(?:[0-9]{1,3}\.){3}[0-9]{1,3}|[0-9A-Fa-f]{1,4})?"
    r"(?:%[A-Za-z0-9_]+)?(?![A-Za-z0-9_:]|\.[0-9])")

# A phone candidate is a run of digit groups joined by one separator each; a parenthesised
# group may touch its neighbours. Validation later picks the sub-runs that look like numbers.
_GROUP = r"(?:\([0-9]{1,5}\)|[0-9]{1,15})"
_SEP = r"(?:[ .\-\u00a0\u202f]|(?<=\))(?=[0-9])|(?<=[0-9])(?=\())"
_PHONE = re.compile(
    rf"(?<![A-Za-z0-9_+/@$#%&=\u20ac\u00a3\u00a5-])(?<![0-9][.,:])\+?{_GROUP}(?:{_SEP}{_GROUP})*"
    r"(?![A-Za-z0-9_(]|[.,:/\-][0-9])")
_TOKEN = re.compile(r"\(([0-9]+)\)|([0-9]+)")
_SPACES = (" ", "\u00a0", "\u202f")


def _emails(text):
  for m in _EMAIL.finditer(text):
    yield m.span()


def _ipv4s(text):
  for m in _IPV4.finditer(text):
    if not _NOT_IP_BEFORE.search(text, max(0, m.start() - 12), m.start()):
      yield m.span()


def _ipv6_ok(candidate):
  try:
    ipaddress.IPv6Address(candidate)
  except ValueError:
    return False
  head = candidate.split("%")[0]
  if "." in head:
    return True
  # Short forms like "1::2" are more often Python slices or C++ scopes than addresses.
  groups = [g for g in head.split(":") if g]
  return len(groups) >= 2 and sum(map(len, groups)) >= 5


def _ipv6s(text):
  for m in _IPV6.finditer(text):
    s, e = m.span()
    candidate = m.group()
    # A trailing ":" is punctuation ("host 2001:db8::1: refused"), unless it closes a "::".
    if not _ipv6_ok(candidate) and candidate.endswith(":") and not candidate.endswith("::"):
      candidate, e = candidate[:-1], e - 1
    if _ipv6_ok(candidate):
      yield s, e


def _is_date(digits):
  for a, b, c in zip(digits, digits[1:], digits[2:]):
    for d, m, y in ((a, b, c), (b, a, c), (c, b, a)):
      if (len(y) == 4 and 1900 <= int(y) <= 2099 and len(d) <= 2 and len(m) <= 2
          and 1 <= int(m) <= 12 and 1 <= int(d) <= 31):
        return True
  return False


def _intl_ok(groups):
  """Groups after a "+": country code, optional "(0)" trunk, then the national number."""
  digits = [d for d, _ in groups]
  total = sum(map(len, digits))
  if not 7 <= total <= 15 or digits[0][0] == "0" or groups[0][1]:
    return False
  if len(groups) == 1:
    return total >= 8  # E.164 written as one run
  rest = groups[1:]
  if rest[0] == ("0", True) and len(rest) > 1:
    rest = rest[1:]
  if len(digits[0]) > 3 or any(p for _, p in rest[1:]) or any(len(d) == 1 for d, _ in rest[1:]):
    return False
  if len(rest) > 1 and max(len(d) for d, _ in rest) > 8:
    return False
  return not _is_date(digits)


def _national_ok(groups):
  """Numbers without "+": a trunk "0", a (area code), or a known US/CN/IN mobile shape."""
  digits = [d for d, _ in groups]
  lens = [len(d) for d in digits]
  if len(groups) >= 3 and set(lens[1:]) == {3}:
    return False  # thousands grouping: the tail of "6 099 941 512"
  if digits[0].startswith("00") and 3 <= lens[0] <= 5 and len(groups) > 1:
    return _intl_ok([(digits[0][2:], False)] + groups[1:])  # "00" international prefix
  if len(groups) < 2 or not 9 <= sum(lens) <= 12 or max(lens) > 8 or 1 in lens[1:]:
    return False
  if any(p for _, p in groups[1:]) or _is_date(digits):
    return False
  head = digits[0]
  if groups[0][1]:
    return lens[0] in (2, 3) and len(groups) <= 3  # (415) 555-0132, (11) 91234-5678
  if head[0] == "0":
    return 2 <= lens[0] <= 5 and head[1] != "0"  # trunk prefix: 020, 030, 01, 03, 011
  return ((lens == [3, 3, 4] and head[0] in "23456789")  # US/Canada 415-555-0132
          or (lens == [1, 3, 3, 4] and head == "1")  # 1-415-555-0132
          or (lens == [3, 4, 4] and head[0] == "1")  # China mobile 138-0013-8000
          or (lens == [5, 5] and head[0] in "6789"))  # India mobile 98765 43210


def _phones(text):
  for m in _PHONE.finditer(text):
    plus = m.group().startswith("+")
    toks = list(_TOKEN.finditer(text, m.start(), m.end()))
    groups = [(t.group(1) or t.group(2), t.group(1) is not None) for t in toks]
    if len(groups) >= 4 and all(len(d) == 4 and not p for d, p in groups[:-1]):
      continue  # blocks of four digits: an IBAN or card number, not a run of phone numbers
    # A number may only be cut out of a longer run at a space: "2024-01-15" stays whole.
    cut = [i == 0 or text[toks[i - 1].end():toks[i].start()] in _SPACES
           for i in range(len(toks))] + [True]
    i = 0
    while i < len(toks):
      # At most 15 digits, so at most 8 groups: this also keeps long digit runs linear.
      for j in range(min(len(toks), i + 8), i, -1):
        if not (cut[i] and cut[j]):
          continue
        sub = groups[i:j]
        if _intl_ok(sub) if (plus and i == 0) else _national_ok(sub):
          yield (m.start() if i == 0 else toks[i].start()), toks[j - 1].end()
          i = j - 1
          break
      i += 1


# Earlier types win overlaps: an e-mail may hold digits, an IPv6 may embed an IPv4.
_FINDERS = (("email", _emails), ("ipv6", _ipv6s), ("ipv4", _ipv4s), ("phone", _phones))


def find_pii(text: str) -> list[tuple[int, int, str]]:
  """Sorted, non-overlapping (start, end, type) spans of PII in `text`."""
  spans, starts = [], []
  if not text:
    return spans
  for kind, finder in _FINDERS:
    for s, e in finder(text):
      i = bisect.bisect_left(starts, s)
      if (i and spans[i - 1][1] > s) or (i < len(spans) and spans[i][0] < e):
        continue
      starts.insert(i, s)
      spans.insert(i, (s, e, kind))
  return spans


def scrub_pii(text: str) -> tuple[str, dict[str, int]]:
  """`text` with every PII span replaced by its placeholder, and the counts per type."""
  counts = dict.fromkeys(TYPES, 0)
  out, pos = [], 0
  for s, e, kind in find_pii(text):
    out += (text[pos:s], PLACEHOLDERS[kind])
    counts[kind] += 1
    pos = e
  out.append(text[pos:] if text else "")
  return "".join(out), counts


def scrub_document(doc: dict) -> dict:
  """A new document with scrubbed text; `meta["pii"]` holds the non-zero counts."""
  text, counts = scrub_pii(doc.get("text") or "")
  meta = dict(doc.get("meta") or {})
  found = {k: n for k, n in counts.items() if n}
  if found:
    meta["pii"] = found
  return {**doc, "text": text, "meta": meta}
