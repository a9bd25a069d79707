"""Backtests on the live engine: the same strategy, risk, sizing and fill code over history."""
