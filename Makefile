# Everything runs inside .venv, created on first use from requirements.txt.
PY ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)

.PHONY: venv test check-reference bench-recall clean-venv

$(STAMP): requirements.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# The whole suite, the reference check (tests/test_reference.py) included.
test: venv
	$(PYTHON) -m pytest -q

# The reference check alone, straight from ../shared when it is there.
check-reference: venv
	$(PYTHON) ../shared/reference/check_reference.py

bench-recall: venv
	$(PYTHON) benchmarks/bench_recall.py

clean-venv:
	rm -rf $(VENV)
