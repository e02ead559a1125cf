# kefu — the two commands that matter: `make run` and `make test` (see README.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup run test lint typecheck unit bench job synth deploy clean

setup: $(STAMP)

$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r requirements-dev.txt
	touch $(STAMP)

run: setup
	$(BIN)/python -m local.run

lint: setup
	$(BIN)/ruff check .

typecheck: setup
	$(BIN)/mypy app.py chalicelib local

test: setup lint typecheck
	$(BIN)/python -m pytest -n 2 --dist loadgroup

bench: setup
	$(BIN)/python -m bench.run

job: setup
	@test -n "$(NAME)" || (echo "usage: make job NAME=<job>" && exit 2)
	$(BIN)/python -m local.job $(NAME)

synth: setup
	cd infra && ../$(BIN)/python app.py

deploy: setup
	cd infra && npx --yes aws-cdk@2 deploy --app "../$(BIN)/python app.py" --require-approval broadening

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache infra/cdk.out
