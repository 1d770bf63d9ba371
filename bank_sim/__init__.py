"""bank_sim package."""
