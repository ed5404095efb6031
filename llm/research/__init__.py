"""Research workflows: hyperparameter sweeps over `llm.main` runs and run reports."""
