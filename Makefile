# The commands the README names. Each creates and fills .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export CIFAR10_ROOT ?= $(CURDIR)/data

.PHONY: setup train report test lab clean hooks screenshot strip-outputs

$(VENV)/.installed: pyproject.toml requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	$(PY) -m cifar_utils.notebook quiet-kernel  # papermill by hand: no "running over TCP" warning per notebook
	$(MAKE) --no-print-directory strip-outputs
	touch $@

# A notebook saved with its outputs (JupyterLab, Run All) shows no change in `git status`: git's clean filter
# strips what nbstripout strips in the pre-commit hook (the same keys); the file on disk keeps its outputs.
strip-outputs:
	@if git rev-parse --git-dir >/dev/null 2>&1; then \
	  $(VENV)/bin/nbstripout --install && \
	  git config filter.nbstripout.clean '"$(CURDIR)/$(PY)" -m nbstripout --keep-id' && \
	  git config filter.nbstripout.extrakeys "$(STRIP_KEYS)"; fi
STRIP_KEYS := metadata.papermill cell.metadata.papermill metadata.language_info.version metadata.widgets

setup: $(VENV)/.installed  ## create .venv and install everything

train: setup  ## the seed recipe: 10 epochs of Adam, prints the table, writes outputs/output.png
	$(PY) train.py --overwrite

report: setup  ## the main job: runs notebooks 01-07 with papermill; outputs/results.md, reports/*.html, figures/, output.png
	$(PY) -m cifar_utils report $(REPORT_ARGS)

test: setup  ## lint and format check, unit tests and notebook tests (nbval); then precision "auto" forced each way
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(PY) -m pytest
	CIFAR_PRECISION=bf16 $(PY) -m pytest -q -m auto_precision
	CIFAR_PRECISION=fp32 $(PY) -m pytest -q -m auto_precision

lab: setup  ## open the notebooks in JupyterLab (what they write goes to scratch/, never to outputs/)
	$(VENV)/bin/jupyter lab $(if $(filter 0,$(shell id -u)),--allow-root) notebooks/

hooks: setup  ## commit hooks: notebooks paired with py:percent files (jupytext), committed without outputs (nbstripout)
	$(VENV)/bin/pre-commit install

screenshot: setup  ## the landing page's first screen (1280x800) in headless Chromium, as outputs/figures/landing_page.png (make report does it too)
	$(PY) -m cifar_utils.report.browser screenshot outputs/index.html outputs/figures/landing_page.png --height 800

clean:  ## what is regenerable and untracked: scratch/, executed notebooks, the corruption cache; no run, no report
	rm -rf scratch outputs/notebooks outputs/cache outputs/.report-staging-*
