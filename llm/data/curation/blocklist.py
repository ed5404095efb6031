"""Compliance: drop documents from blocked sources, URL domains, licenses or titles."""


def blocklist_reason(doc: dict, blocklist) -> str | None:
  """A drop reason ("blocklist:domain", ...) if the document matches the blocklist, else None.

  `blocklist` has lists `sources`, `domains` (a domain also blocks its subdomains), `licenses`
  and `titles` (case-insensitive substring match).
  """
  meta = doc["meta"]
  if doc["source"] in blocklist.sources:
    return "blocklist:source"
  domain = (meta.get("domain") or "").lower()
  if domain and any(domain == d or domain.endswith("." + d) for d in blocklist.domains):
    return "blocklist:domain"
  if meta.get("license") in blocklist.licenses:
    return "blocklist:license"
  title = (meta.get("title") or "").lower()
  if title and any(t.lower() in title for t in blocklist.titles):
    return "blocklist:title"
  return None
