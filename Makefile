# vizion3d_ros developer commands. `make demo` and `make test` are all a newcomer needs.
SHELL := /bin/bash
ENV := source scripts/env.sh
SHARED ?= $(abspath ../shared)
MODEL ?= $(SHARED)/models/yolov8n-seg-coco.pt
OUT ?= out/demo

.PHONY: setup demo test lint unit integration bench bench-lifting proto clean help

help:
	@echo "make setup  - install everything (system packages, pinned venv, colcon build); idempotent"
	@echo "make demo   - run the node on the real TUM RGB-D frame and write results to $(OUT)"
	@echo "make test   - lint + unit + integration tests (what CI runs)"
	@echo "make bench  - every benchmark (lifting, scaling, conversions, node and transport over DDS, fusion, live map) -> docs/BENCHMARKS.md"

setup:
	@bash scripts/setup.sh

demo: setup
	@$(ENV) && vizion3d_demo --out $(OUT) $(if $(wildcard $(MODEL)),--model $(MODEL),)

lint: setup
	@$(ENV) && ruff check .

test: setup
	@$(ENV) && ruff check . && python -m pytest test

unit: setup
	@$(ENV) && python -m pytest test -m "not integration"

integration: setup
	@$(ENV) && python -m pytest test -m integration

# the gRPC server's Python code from vizion3d_ros/servers/proto/lifting.proto (committed; a test checks it is current)
proto:
	@$(ENV) && python -m vizion3d_ros.servers.proto.generate

bench-lifting: setup
	@$(ENV) && python bench/bench_lifting.py

# about 15 minutes on 2 cores; each script also writes its own docs/bench/<name>.{json,md,png}
bench: setup
	@$(ENV) && python bench/bench_lifting.py && python bench/bench_scaling.py \
		&& python bench/bench_conversions.py && python bench/bench_node.py && python bench/bench_transport.py \
		&& python bench/bench_fusion.py && python bench/bench_map.py && python bench/report.py

clean:
	rm -rf build install log out .pytest_cache .ruff_cache
