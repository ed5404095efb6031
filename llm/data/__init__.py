"""Data: sources of raw documents, packing into token rows, and resumable batch iterators."""
