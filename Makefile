# Fresh machine: `make demo` sets up .venv/ and runs the bundled demo; `make test` runs the tests.
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.mixqsam2-installed

.PHONY: setup demo test

setup: $(STAMP)

# torch: the CPU wheel, from PyTorch's CPU index or a local wheel (PyPI's torch is a multi-GB CUDA build);
# sam2: Meta's package, built without isolation and without its deps (it declares an
# unpinned torch and torchvision, which we must not pull).
$(STAMP): setup.py Makefile
	python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip setuptools wheel
	$(PIP) install -q --retries 1 --index-url https://download.pytorch.org/whl/cpu torch==2.13.0
	$(PIP) install -q hydra-core iopath tqdm pillow numpy pyyaml
	SAM2_BUILD_CUDA=0 $(PIP) install -q --no-build-isolation --no-deps sam2==1.1.0
	$(PIP) install -q -e '.[calib,train,dev]'
	touch $@

demo: setup
	$(VENV)/bin/run_stream --demo --overwrite --out out/demo   # rerunnable: --overwrite replaces only our files

test: setup
	$(PY) -m pytest -q -rs   # tests/ and the docstring examples of toolkit/mixqsam2 (pytest.ini); -rs: why each skip
