"""Classical imputation baselines."""
