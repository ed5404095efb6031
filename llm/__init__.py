"""llm-lifecycle: one JAX codebase for the life of a language model."""
