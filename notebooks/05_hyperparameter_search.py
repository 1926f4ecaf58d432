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
# # 05 · Hyperparameter search
#
# Which settings of the seed recipe's knobs work best, and does the best beat the recipe itself?
# A random search over the optimizer, learning rate, weight decay, batch size, label smoothing and
# number of epochs, each trial a short run scored on the **validation split only**. The
# best trial's configuration is then trained again on fresh seeds, beside the seed recipe's own
# configuration on the same seeds, and only these runs are evaluated, once, on the test set. The test
# set never chooses anything: the trials are not even evaluated on it.
#
# | knob | values searched |
# |---|---|
# | optimizer | Adam; SGD (momentum 0.9, Nesterov) |
# | learning rate | Adam: 3e-4, 1e-3, 3e-3; SGD: 0.01, 0.03, 0.1 |
# | weight decay (L2) | 0, 5e-4, 5e-3 |
# | batch size | 64, 128, 256 |
# | label smoothing | 0, 0.1 |
# | epochs | half of, or all of, the experiments' epochs (5 or 10) |
#
# Trial 1 is always the seed recipe itself (Adam 1e-3, no weight decay, batch 128, no label
# smoothing, no augmentation); the others are drawn at random, without repeats, from the 216
# combinations. Every run uses the same augmentation (`SEARCH_AUGMENT`: none, the seed recipe's)
# and the same training subset as notebook 04, so the seed recipe's re-trained runs are notebook 04's
# `none` runs, reused. Trials are saved under `RUNS_DIR/search-trials/`, the re-trained runs
# under `RUNS_DIR/experiments/`.
#
# Run it as is, in JupyterLab (`make lab`), or headless with the rest of the report (`make report`, which
# executes it with [papermill](https://papermill.readthedocs.io) and passes the parameters below).
# With `SMOKE` on (`CIFAR_SMOKE=1`, or `$CI` set, as the tests do) it does the least work that still runs every cell.

# %%
# %matplotlib inline
import warnings

warnings.filterwarnings("ignore", message="IProgress not found")  # no ipywidgets: tqdm.auto uses text bars
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from cifar_utils import experiments as E
from cifar_utils import notebook as NB
from cifar_utils import paths, plots
from cifar_utils import tables as T
from cifar_utils.atomic import save_figure, write_text
from cifar_utils.data import load_cifar10

# %% tags=["parameters"]
SMOKE = NB.smoke_default()  # 3 trials and 2 seeds of 1 epoch on 1000 images (on when $CIFAR_SMOKE is 1, or $CI is set)
TRIALS = None  # search trials, the first being the seed recipe (None: 10; 3 in smoke mode)
SEEDS = None  # seeds of the final re-training, 1..SEEDS (None: 5; 2 in smoke mode)
EXPERIMENT_EPOCHS = None  # the recipe's epochs; trials try half and all of it (None: 10; 1 in smoke mode)
EXPERIMENT_SUBSET = None  # training images (None: 10000; 1000 in smoke mode; 0: all 45,000)
SEARCH_SEED = 0  # which random trials are drawn
SEARCH_AUGMENT = None  # augmentation of every run (None: "none", the seed recipe's)
DATA_ROOT = None  # folder holding cifar-10-batches-py/ (None: $CIFAR10_ROOT, else <project>/data)
VERIFY_DATA = True  # check the files' md5 sums (the report checks once and passes False)
OUTPUT_DIR = None  # figures and the results section go here (None: $CIFAR_OUTPUTS, else <project>/outputs)
RUNS_DIR = None  # runs are saved in RUNS_DIR/search-trials/ and RUNS_DIR/experiments/ (None: OUTPUT_DIR/runs)
REUSE = True  # load a finished run of the same configuration instead of training it again

# %%
settings = E.experiment_settings(SMOKE, seeds=SEEDS, epochs=EXPERIMENT_EPOCHS, train_subset=EXPERIMENT_SUBSET,
                                 trials=TRIALS, augment=SEARCH_AUGMENT)
trials = E.sample_trials(settings, seed=SEARCH_SEED)
out = paths.outputs_dir(OUTPUT_DIR)
runs_dir = Path(RUNS_DIR or out / "runs")
data = load_cifar10(paths.data_root(DATA_ROOT), download=not SMOKE, verify=VERIFY_DATA)
if SMOKE:
    data = NB.smoke_dataset(data)
print(f"{len(trials)} trials with seed {E.SEARCH_TRIAL_SEED}, {settings.augment}; then the best and the recipe on "
      f"{settings.describe()}")
pd.DataFrame(trials, index=pd.RangeIndex(1, len(trials) + 1, name="trial"))

# %% [markdown]
# ## The trials, scored on validation
#
# A trial whose loss diverges is kept as a result (NaN), not an error.

# %%
trial_frame = E.train_runs(E.trial_configs(settings, trials), runs_dir / E.TRIALS_STORE, data,
                          evaluate_test=False, reuse=REUSE)
E.search_table(trial_frame)

# %%
fig = plots.plot_search(trial_frame, E.KNOBS)
save_figure(fig, out / "figures" / "05_hyperparameter_search.png");

# %% [markdown]
# ## The best configuration, trained again and tested once
#
# The best trial's validation score is optimistic: it won because it was high, partly by luck of its
# seed. Fresh seeds give an honest estimate, and the seed recipe trained on the same seeds is the
# comparison. Both are evaluated on the test set once, here.

# %%
best = E.best_trial(trial_frame)
baseline = E.baseline_knobs(settings)
print("best trial:", E.describe_knobs(best))
print("seed recipe:", E.describe_knobs(baseline))
store = runs_dir / E.EVALUATED_STORE
final = {"seed recipe": E.train_runs(E.retrain_configs(settings, baseline), store, data, evaluate_test=True, reuse=REUSE)}
if best != baseline:
    final["best trial"] = E.train_runs(E.retrain_configs(settings, best), store, data, evaluate_test=True, reuse=REUSE)
else:
    print("the seed recipe won the search: there is nothing to compare it with")
final_frame = pd.concat([f.assign(configuration=name) for name, f in final.items()], ignore_index=True)

# %%
table, sentences = E.group_table(final_frame, "configuration", reference="seed recipe")
display(table)
display(Markdown("\n".join(f"- {s}" for s in sentences) or "(one configuration only)"))

# %%
fig = plots.plot_group_intervals(final_frame, "configuration", title="Best trial vs the seed recipe, fresh seeds (dots: seeds)")
save_figure(fig, out / "figures" / "05_best_vs_recipe.png");

# %% [markdown]
# ## Provenance and the section in `outputs/results.md`
#
# The report puts this section into `outputs/results.md`.

# %%
ranked = E.search_table(trial_frame)
runs_line = E.provenance_line(pd.concat([trial_frame, final_frame], ignore_index=True))
if best != baseline:
    retrained = f"The best, {E.describe_knobs(best)}, was then trained on {settings.describe()} beside the seed recipe"
else:
    retrained = f"The best was the seed recipe itself; it was then trained on {settings.describe()}"
section = E.markdown_section(
    "Hyperparameter search (notebook 05)",
    [f"{len(trials)} random trials (seed {SEARCH_SEED}) of the seed recipe's knobs (augmentation: {settings.augment}), "
     f"on {settings.train_subset or 45000:,} training images, scored on the validation split only. {retrained}, "
     f"and only those runs were evaluated on the {len(data.test_images):,} test images.",
     "", "### Trials, best first (validation only)", "", T.markdown_table(ranked), "",
     "### The best trial against the seed recipe, fresh seeds, test set once"],
    table, sentences,
    ["![hyperparameter search](figures/05_hyperparameter_search.png)", "",
     "![best vs recipe](figures/05_best_vs_recipe.png)", "", f"Runs: {runs_line}"])
write_text(out / "experiments" / "05_hyperparameter_search.md", section)
print(runs_line)
