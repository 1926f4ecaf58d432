# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 07 · Architectures side by side at equal training time
#
# Which network should you train when you have *T* seconds of this machine? The seed project's CNN is
# small and quick; the fast net is built for speed to accuracy; ResNet-18 is the common strong baseline
# and the slowest. Comparing them at equal *epochs* would favour the expensive one, so here each trains
# with its own recipe at a ladder of epoch counts, and every run is placed by its measured training
# seconds on this machine:
#
# - **The same data for all:** the same training images and validation split, the same seeds.
# - **Each architecture's own recipe:** the seed recipe for `seed_cnn`, the fast recipe for `fast`, and
#   for `resnet18` a plain SGD recipe with the usual CIFAR settings (not tuned here; say so when reading
#   its numbers).
# - **The test set once per run**, after training; nothing is chosen on it.
# - **Ranked on validation, a Pareto front:** a rung is on the front when no other rung is both faster and more
#   accurate on validation. For a few time budgets, the table gives the best validation accuracy each
#   architecture reached within it.
#
# Times are this machine's (CPU and precision are printed below); on another machine the ranking can
# differ, which is why the notebook measures instead of quoting. Each run's records are saved under
# `RUNS_DIR` (default `outputs/experiments/runs/<digest>/`, shared with notebooks 04 and 05) and committed,
# so a fresh clone rebuilds the table and figure without training; `RERUN=True` trains them again.


# %%
# %matplotlib inline

import pandas as pd
from IPython.display import Markdown, display

from cifar_utils import notebook, paths
from cifar_utils.analysis import architecture_comparison, experiments, figures, headline_records
from cifar_utils.core.data import load_cifar10
from cifar_utils.runs.atomic import save_figure, write_text

# %% tags=["parameters"]
SMOKE = notebook.smoke_default()  # tiny networks, one epoch on 1000 images, one seed (on when $CIFAR_SMOKE is 1, or $CI is set)
LADDERS = None  # epochs of each rung per architecture, e.g. {"seed_cnn": [2, 5, 10], "fast": [1, 2, 4, 8]} (None: architectures.LADDERS)
SEEDS = None  # seeds per rung, 1 to SEEDS (None: 2; 1 in smoke mode)
TIME_BUDGETS = [60, 300, 600]  # seconds of training at which the architectures are compared
EXPERIMENT_SUBSET = None  # training images (None: all 45,000; 1000 in smoke mode)
DEVICE = None  # "auto", "cpu" or "cuda" (None: auto)
PRECISION = None  # "auto", "fp32", "bf16" (None: auto; part of each run's digest)
RERUN = False  # train every run again even when its records are there
# Plumbing: where data and files are (the report sets these; by hand the defaults are right)
DATA_ROOT = None  # folder holding cifar-10-batches-py/ (None: $CIFAR10_ROOT, else <project>/data)
VERIFY_DATA = True  # check the files' md5 sums (the report checks once and passes False)
OUTPUT_DIR = None  # figures and the results section go here (None: $CIFAR_OUTPUTS, else <project>/scratch; only the report writes outputs/)
RUNS_DIR = None  # run records (None: OUTPUT_DIR/experiments/runs)

# %%
plan = architecture_comparison.plan(SMOKE, LADDERS, SEEDS, EXPERIMENT_SUBSET, DEVICE, PRECISION)
out = paths.notebook_outputs_dir(OUTPUT_DIR)
store = experiments.runs_store(out, RUNS_DIR)
data = load_cifar10(paths.data_root(DATA_ROOT), download=not SMOKE, verify=VERIFY_DATA)
if SMOKE:
    data = notebook.smoke_dataset(data)
display(Markdown(f"Every run: {plan.describe()}."))
pd.DataFrame({a: {"recipe": architecture_comparison.ARCHITECTURES[a][0], "changed": ", ".join(f"{k} {v}" for k, v in architecture_comparison.ARCHITECTURES[a][1].items()) or "nothing"}
              for a in plan.ladders}).T

# %% [markdown]
# ## Training every rung
#
# One line per run: the architecture, its seed, validation accuracy and wall time. Runs whose records
# are present are reused.

# %%
configs, labels = architecture_comparison.runs_to_train(plan)
frame = experiments.train_runs(configs, store, data, rerun=RERUN, labels=labels)

# %% [markdown]
# ## The test set, once per run

# %%
tested = experiments.test_results(configs, store, data)
frame = frame.merge(tested[["run", "test_accuracy", "test_images"]], on="run")
table = architecture_comparison.rung_table(frame)
table.round(2)

# %% [markdown]
# ## Accuracy against training time
#
# Each point is one rung (mean over its seeds, with their standard deviation as error bars), labelled
# with its epochs; rungs on the Pareto front are ringed. The time axis is logarithmic.

# %%
machine = ", ".join(sorted({str(d) for d in frame["device"].dropna()})) or "this machine"
fig = figures.plot_pareto(table, title="Validation accuracy against training time", machine=machine)
save_figure(fig, out / "figures" / "07_architectures.png")

# %% [markdown]
# ## At equal time budgets
#
# For each budget and architecture, the rung with the best validation accuracy whose median training time fits;
# its test accuracy beside it is read once and chooses nothing.

# %%
within = architecture_comparison.best_within(table, TIME_BUDGETS)
sentences = architecture_comparison.findings(table, TIME_BUDGETS)
display(within)
display(Markdown("\n".join(f"- {s}" for s in sentences)))

# %% [markdown]
# ## Provenance and the section in `outputs/results.md`

# %%
provenance = experiments.provenance_line(frame)
shown = table.assign(**{"val accuracy %": table["val accuracy %"].round(2),
                        "test accuracy %": table["test accuracy %"].round(2), "std": table["std"].round(2),
                        "median train s": table["median train s"].round(1), "images/s": table["images/s"].round(0)})
section = experiments.markdown_section(
    "Architectures at equal training time (notebook 07)",
    [f"Every run: {plan.describe()}. Validation accuracy (ranks the rungs) and test accuracy (read once, chooses nothing) after training, against the measured training seconds on this "
     f"machine; each architecture with its own recipe (resnet18's is a plain, untuned SGD recipe)."],
    shown.set_index("architecture"), sentences,
    ["![architectures](../figures/07_architectures.png)", "", f"Runs: {provenance}"])
write_text(out / "experiments" / "07_architectures.md", section)
headline_records.write(headline_records.architecture_record(table, frame, TIME_BUDGETS, [store / r for r in frame["run"]]), out)
print(provenance)

# %% [markdown]
# ## Findings
#
# Written from the numbers above; the report shows this cell first.

# %% tags=["findings"]
notebook.show_findings([*sentences, f"Every run: {plan.describe()}."])
