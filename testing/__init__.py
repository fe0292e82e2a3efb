"""Test support: builders, the Polars oracle, fakes and readers that tests, integration
tests and benchmarks share. No production module imports it (an import-linter contract in
pyproject.toml says so, run by `make lint`)."""
