# The two commands of the README. Both set everything up first (installer/setup.sh).
.PHONY: setup demo test lint bench bench-jobs

setup:
	./installer/setup.sh

demo: setup
	.venv/bin/replicadesk demo

test: setup
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check .
	.venv/bin/mypy

bench: setup
	.venv/bin/python benchmarks/engine_bench.py

bench-jobs: setup
	.venv/bin/python benchmarks/jobs_bench.py
