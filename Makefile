# Every target that runs code first makes sure .venv and the native libraries exist.
VENV   := .venv
PY     := $(VENV)/bin/python
SETUP  := scripts/bootstrap.sh

.PHONY: setup serve tui test lint typecheck unit proto lock clean

setup:
	@bash $(SETUP)

serve: setup
	$(VENV)/bin/echomesh-serve $(ARGS)

# The terminal client, e.g. make tui ARGS="--server 127.0.0.1:8888 --plaintext --user ann --room lobby"
tui: setup
	$(VENV)/bin/echomesh-tui $(ARGS)

test: setup lint typecheck unit

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: setup
	$(VENV)/bin/mypy

unit: setup
	$(PY) -m pytest $(PYTEST_ARGS)

# Regenerate echomesh_trio/protocol/message_pb2.py(i) from proto/message.proto.
proto: setup
	$(PY) -m grpc_tools.protoc -Iproto --python_out=echomesh_trio/protocol \
	    --pyi_out=echomesh_trio/protocol proto/message.proto

# Regenerate the lock files (hashes included) from pyproject.toml; see scripts/lock.sh.
lock: setup
	bash scripts/lock.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
