"""Documents as records, and the contract every curation stage follows.

A document is a plain dict: {"id": str, "text": str, "source": str, "meta": dict}. `meta`
carries the license, language, scores and per-stage counts. Stages are small functions:

- a *filter* takes the text (and the language) and returns a drop reason such as
  "gopher_quality:mean_word_length", or None to keep the document;
- a *mapper* returns a changed document (e.g. PII scrubbing) and records counts in `meta`.

Corpus-level stages (exact and near dedup) see all documents and return the ids to drop.
"""


def make_document(doc_id: str, text: str, source: str, **meta) -> dict:
  """A document record; `meta` typically holds license, url, title, language."""
  return {"id": doc_id, "text": text, "source": source, "meta": dict(meta)}
