"""Serving: the engine and HTTP server, on top of the sampling primitives in
llm/model/sampling.py."""
