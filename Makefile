# The two commands a newcomer needs: `make demo` and `make test`. Both bootstrap themselves.
PY := .venv/bin/python
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: bootstrap demo test test-slow lint unit functional integration bench bench-scale soak clean

bootstrap:
	@scripts/bootstrap.sh

demo: bootstrap
	$(PY) -m sandbox.demo

lint: bootstrap
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	scripts/salt-lint-all.sh

# pytest exits 5 when it collected nothing: that must fail, never pass silently.
# Tests marked `bench` (a rig proof too slow for the suite's budget) run in `make bench`;
# those marked `slow` (acceptance tests over the 40-minute budget) in `make test-slow`.
test: lint
	$(PY) -m pytest tests -m "not bench and not slow" -ra --durations=40; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test: no tests ran" >&2; exit 1; fi; exit $$rc

test-slow: bootstrap
	CERTDEPLOY_TEST_RIG=$${CERTDEPLOY_TEST_RIG:-$$CERTDEPLOY_BENCH_RIG} \
	  $(PY) -m pytest tests -m slow -ra --durations=10; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make test-slow: no slow-marked test ran" >&2; exit 1; fi; exit $$rc

unit: bootstrap
	$(PY) -m pytest tests/unit -ra

functional: bootstrap
	$(PY) -m pytest tests/functional -ra

integration: bootstrap
	$(PY) -m pytest tests/integration -m "not bench and not slow" -ra --durations=15

bench: bootstrap
	$(PY) -m bench
	CERTDEPLOY_TEST_RIG=$${CERTDEPLOY_TEST_RIG:-$$CERTDEPLOY_BENCH_RIG} \
	  $(PY) -m pytest tests -m bench -ra --durations=5; rc=$$?; \
	  if [ $$rc -eq 5 ]; then echo "make bench: no bench-marked test ran" >&2; exit 1; fi; exit $$rc

# Issue 14's scale run: SCALE_STEPS (default 100) real salt-minions, each with one client app,
# in one rollout (max_parallel SCALE_PARALLEL, default 50); its own rig in /tmp/cdscale unless
# CERTDEPLOY_BENCH_RIG names a running one. Writes artifacts/bench-scale.json.
bench-scale: bootstrap
	$(PY) -m bench.scale

# Issue 13's soak: SOAK_CYCLES (default 500) deploy -> verify -> rollback -> verify cycles under
# QUORUM load; its own rig in /tmp/cdsoak unless CERTDEPLOY_BENCH_RIG names a running one.
soak: bootstrap
	$(PY) -m bench.soak

clean:
	rm -rf .venv .cache .pytest_cache .ruff_cache
