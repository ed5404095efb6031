"""Curation: raw documents from packaged corpora and files -> cleaned, deduplicated, mixed shards.

Sits below the tokenizer: it reads and cleans text, and never imports a later stage.
"""
