# One entry point for every check; the README's test command runs `make test`.
PYTHON ?= python3

.PHONY: test pytest cargo-test checks docs bench

test: pytest cargo-test checks

pytest:
	$(PYTHON) -m pytest -q

cargo-test:
	cargo test --workspace -q

# Lints, types, stub/runtime agreement, the API reference, and the release
# wheel in a clean venv and on Python 3.10, 3.12 and 3.13 (scripts/test_pythons.sh).
checks:
	@if [ -x scripts/check.sh ] || [ -f scripts/check.sh ]; then bash scripts/check.sh; fi

# The API reference (pdoc) in docs/api/ (open docs/api/index.html); fails on
# any warning or undocumented public name. `make test` builds it too (checks).
docs:
	$(PYTHON) scripts/docs.py

bench:
	$(PYTHON) benches/run.py
