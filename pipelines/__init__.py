"""Pipelines: run specs, planning, generation, scoring, the single DuckDB loader, validation, the CLI."""
