"""Serving: generation with a KV cache (paged engine and HTTP server come later)."""
