"""The application layer of pbt-repro: commands, comparison, reports."""
