"""The vocabulary study: a bigger vocabulary packs more bytes into a token; byte fallback is
set by the character coverage; the table lists every source and language."""

from llm.data.curation.sources import load_documents
from llm.tokenizer.study import markdown, run_study


def test_bigger_vocabularies_pack_more_bytes_per_token(tmp_path):
  docs = [d for name in ("shakespeare", "peoples_daily", "python_stdlib")
          for d in load_documents(name, 150_000)]
  results = run_study(docs, [2000, 4000], ["bpe"], str(tmp_path), character_coverage=0.98)
  small, big = (m["heldout"] for m in results["models"])
  assert big["all"]["bytes_per_token"] > small["all"]["bytes_per_token"]
  # Coverage 0.98 leaves rare hanzi to bytes, the same ones at either size.
  assert small["language:zh"]["byte_tokens"] == big["language:zh"]["byte_tokens"] > 0
  table = markdown(results)
  for key in ("source:shakespeare", "source:peoples_daily", "language:code", "train seconds"):
    assert key in table
