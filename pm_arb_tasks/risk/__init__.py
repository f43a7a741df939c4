"""Risk: the guardian that approves trade requests against limits and accounts for outcomes."""
