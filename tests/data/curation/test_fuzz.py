"""Bad input never crashes the curation: random bytes, broken JSON lines, empty and huge texts."""

import collections
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llm.data.curation.steps import process_document
from llm.data.curation.config import default_curation_config
from llm.data.curation.document import make_document
from llm.data.curation.normalize import decode_bytes
from llm.data.curation.readers import read_jsonl

CONFIG = default_curation_config()
KINDS = ["web", "book", "news", "dialog", "code"]
CONFIG.kinds = {kind: kind for kind in KINDS}


def _check(doc):
  out, reason, events = process_document(doc, CONFIG)
  assert reason is None or (isinstance(reason, str) and ":" in reason)
  assert not (reason or "").startswith("error:"), reason
  assert all(isinstance(v, int) for v in events.values())
  if reason is None:
    assert isinstance(out["text"], str) and out["text"].strip()


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(raw=st.binary(max_size=3000), kind=st.sampled_from(KINDS))
def test_random_bytes_as_documents(raw, kind):
  _check(make_document("x", decode_bytes(raw), kind))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=3000), kind=st.sampled_from(KINDS))
def test_random_unicode_as_documents(text, kind):
  _check(make_document("x", text, kind))


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=st.lists(st.one_of(
    st.binary(max_size=200),
    st.builds(lambda t: json.dumps({"text": t}).encode(), st.text(max_size=200)),
    st.builds(lambda v: json.dumps(v).encode(), st.one_of(st.integers(), st.lists(st.none()),
                                                         st.dictionaries(st.text(), st.text())))),
    max_size=20))
def test_broken_jsonl_files_are_counted_not_raised(tmp_path_factory, lines):
  path = tmp_path_factory.mktemp("j") / "f.jsonl"
  path.write_bytes(b"\n".join(line.replace(b"\n", b" ") for line in lines))
  skipped = collections.Counter()
  docs = list(read_jsonl(str(path), "web", skipped))
  nonblank = sum(1 for line in lines if line.replace(b"\n", b" ").strip())
  assert len(docs) + sum(skipped.values()) == nonblank
  for doc in docs:
    _check(doc)


def test_empty_and_ten_megabyte_documents():
  _check(make_document("empty", "", "web"))
  assert process_document(make_document("empty", "", "web"), CONFIG)[1] == "normalize:empty"
  sentence = "The committee met on Tuesday and agreed to repair the north bridge before winter. "
  huge = "".join(f"{sentence[:-2]} number {i}. " for i in range(110_000))
  assert len(huge.encode()) > 10_000_000
  for kind in ("web", "code"):
    _check(make_document("huge", huge, kind))
