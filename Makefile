# One entry point for every check; the README's test command runs `make test`.
PYTHON ?= python3

.PHONY: test quick pytest cargo-test checks quick-checks docs bench

# Everything CI runs (the README says how long it takes).
test: pytest cargo-test checks

# The edit-test loop: the same tests and checks on this Python only, without
# the release wheel and the other Pythons (scripts/check_wheel.sh).
quick: pytest cargo-test quick-checks

pytest:
	$(PYTHON) -m pytest -q

cargo-test:
	cargo test --workspace -q

# Lints, types, stub/runtime agreement, the API reference, and the release
# wheel in a clean venv and on Python 3.10, 3.12 and 3.13 (scripts/test_pythons.sh).
checks:
	bash scripts/check.sh

quick-checks:
	bash scripts/check.sh --no-wheel

# The API reference (pdoc) in docs/api/ (open docs/api/index.html); fails on
# any warning or undocumented public name. `make test` builds it too (checks).
docs:
	$(PYTHON) scripts/docs.py

bench:
	$(PYTHON) benches/run.py
