# Entry points; the scripts do the work (and install what is missing first).
#   make test [ARGS="tests/devstack -k redis"]  lint, type-check and run the tests
#   make run / make stop                          local stack (see scripts/run-stack.sh)
.PHONY: deps test lint run stop clean-stack proto

VENV := .venv/bin

deps:
	bash scripts/install-deps.sh

test:
	bash scripts/test.sh $(ARGS)

lint: deps
	$(VENV)/ruff check .
	$(VENV)/ruff format --check .
	$(VENV)/mypy
	$(VENV)/mypy --strict tests/conftest.py

run:
	bash scripts/run-stack.sh

stop:
	bash scripts/run-stack.sh stop

clean-stack:
	bash scripts/run-stack.sh clean

proto: deps
	$(VENV)/python scripts/gen_proto.py
