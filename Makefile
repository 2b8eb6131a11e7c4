# One entry point for every check; the README's test command runs `make test`.
PYTHON ?= python3

.PHONY: test pytest cargo-test checks bench

test: pytest cargo-test checks

pytest:
	$(PYTHON) -m pytest -q

cargo-test:
	cargo test --workspace -q

# Lints, types, stub/runtime agreement and the clean-venv wheel check.
checks:
	@if [ -x scripts/check.sh ] || [ -f scripts/check.sh ]; then bash scripts/check.sh; fi

bench:
	$(PYTHON) benches/run.py
