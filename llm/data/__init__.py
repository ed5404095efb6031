"""Data: curation of raw documents (curation/), then the training input built on the tokenizer:
tokenize and pack into rows, and resumable batch iterators."""
