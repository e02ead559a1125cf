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

# Offline: the Lambda asset holds the app code only (no PyPI); `make deploy` packages requirements.txt too.
synth: setup
	KEFU_INFRA_PACKAGE=$${KEFU_INFRA_PACKAGE:-offline} AWS_DEFAULT_REGION=$${AWS_DEFAULT_REGION:-us-east-1} \
		$(BIN)/python infra/app.py
	$(BIN)/cfn-lint --non-zero-exit-code error infra/cdk.out/*.template.json
	@echo "template: infra/cdk.out/$${KEFU_INFRA_PREFIX:-kefu}.template.json"

# Real AWS (credentials of the target account; see docs/DEPLOY.md). Not run in CI.
CDK ?= npx --yes aws-cdk@2
deploy: setup
	cd infra && $(CDK) deploy -c kefu:package=full --require-approval broadening $(CDK_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache infra/cdk.out
