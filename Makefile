# The stack on this machine, without Docker; deploy/local/stack does the work.
#   make up       install what is missing, start everything, run the services in the foreground
#   make test     install what is missing, start the infrastructure, run ruff, mypy and pytest
#   make down     stop the services and the infrastructure
# `make up ONLY=ingest,metadata` starts only those services; `make up REPLICAS=2` runs two
# processes of each (replica k listens on the service's port + 10 * (k - 1)).

STACK := deploy/local/stack

.PHONY: up down status infra install test

up:
	@$(STACK) up $(if $(ONLY),--only $(ONLY)) $(if $(REPLICAS),--replicas $(REPLICAS))

down:
	@$(STACK) stop

status:
	@$(STACK) status

infra:
	@$(STACK) start

install:
	@$(STACK) install

test: infra
	uv run ruff check .
	uv run ruff format --check .
	uv run mypy
	uv run pytest
