"""Safety: a guard model with rejection sampling, and backdoor detection."""
