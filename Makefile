# The two commands of the README. Both set everything up first (installer/setup.sh).
.PHONY: setup demo demo-headless test lint bench bench-jobs bench-console

setup:
	./installer/setup.sh

# The console on the built-in lab; it needs a display and says so (pointing here) without one.
demo: setup
	.venv/bin/replicadesk console --lab

# The same story in the terminal: two runs of the job, replicas checked with qemu-img.
demo-headless: setup
	.venv/bin/replicadesk demo

test: setup
	.venv/bin/python -m pytest -q

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy

bench: setup
	.venv/bin/python benchmarks/engine_bench.py

bench-jobs: setup
	.venv/bin/python benchmarks/jobs_bench.py

bench-console: setup
	.venv/bin/python benchmarks/console_bench.py
