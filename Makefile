# Everything runs inside .venv, created on first use from requirements.txt.
PY ?= python3
VENV := .venv
PYTHON := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)


.PHONY: venv test test-fast demo mini-reproduction noto-font check-reference bench-recall bench-deploy clean-venv

$(STAMP): requirements.txt
	test -x $(PYTHON) || $(PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q -r requirements.txt
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

# The CPU demo on the emoji data set (docs/demo.md).
demo: venv noto-font
	$(PYTHON) scripts/demo.py

# The paper's three settings with ImageNet-pretrained EfficientNet-Lite networks above a frozen,
# cached bottom (docs/mini_reproduction.md): the spec scripts/specs/$(MINI).toml through the
# experiment runner (finished runs are skipped, interrupted ones resume), then the tables in misc/.
# The default, mini_reproduction_stage6: stage6 and the head train, every run a 50-epoch cosine to
# its end, three seeds. MINI=mini_reproduction: the earlier head-only regime under patience, five
# seeds. A _full suffix: all eight methods (in the same folder, reusing its runs).
# MINI=mini_reproduction_short: the whole-network miniature of 2-8 epochs. LANES: runs side by side,
# one thread each (per spec below, as measured; 2 otherwise).
MINI ?= mini_reproduction_stage6
LANES_mini_reproduction = 5
LANES_mini_reproduction_full = 5
LANES_mini_reproduction_short = 1
LANES ?= $(or $(LANES_$(MINI)),2)
TABLES = $(patsubst %_full,%,$(MINI))
mini-reproduction: venv noto-font
	$(PYTHON) scripts/experiments.py run scripts/specs/$(MINI).toml --lanes $(LANES)
	$(PYTHON) scripts/results_table.py logs/$(TABLES) --matched-baselines --flag-rising \
	  --title "Mini reproduction on emoji" --markdown misc/$(TABLES).md --csv misc/$(TABLES).csv \
	  --figure misc/$(TABLES).png --claims misc/$(TABLES)_claims.md --curves misc/$(TABLES)_curves.png

# Google's emoji font: the demo data's Noto drawings when npm's @iconify-json/noto cannot be had
# (scripts/prepare_emoji.py installs the npm sets). Installed only where that is harmless (root
# with apt-get, e.g. a container or CI); elsewhere Noto then comes from npm alone.
NOTO := /usr/share/fonts/truetype/noto/NotoColorEmoji.ttf
noto-font:
	@if [ ! -f $(NOTO) ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  (apt-get update -qq && apt-get install -y -qq fonts-noto-color-emoji >/dev/null) \
	  || echo "note: fonts-noto-color-emoji not installed; Noto's emoji come from npm or not at all"; \
	fi

# The whole suite, the reference check (tests/test_reference.py) included.
test: venv
	$(PYTHON) -m pytest -q -n 2 --dist loadfile

# The unit tests alone (65 s on 2 cores): everything but the end-to-end training runs.
test-fast: venv
	$(PYTHON) -m pytest -q -n 2 --dist loadfile -m "not e2e"

# The authors'-values check alone. Its script lives beside the project's development copy
# (../shared), not in clones; there the same values are checked by `make test` (tests/data/reference_public.pt).
REFERENCE := ../shared/reference/check_reference.py
check-reference: venv
	@if [ -f $(REFERENCE) ]; then $(PYTHON) $(REFERENCE); else \
	  echo "check-reference: skipped, $(REFERENCE) is not beside this checkout (it is not part of a clone);"; \
	  echo "  the same authors' values are checked by 'make test' in tests/*/test_reference_*.py."; fi

bench-recall: venv
	$(PYTHON) benchmarks/bench_recall.py

# Size and speed of the paper's targets against their sources (docs/deploy.md).
bench-deploy: venv
	$(PYTHON) benchmarks/bench_deploy.py

clean-venv:
	rm -rf $(VENV)
