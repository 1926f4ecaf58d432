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
# # 04 · Augmentation ablation
#
# Does data augmentation help the seed recipe, and by how much? The same recipe (the baseline CNN,
# Adam at 1e-3, batch size 128) is trained with each augmentation setting on several seeds, and
# every configuration is evaluated once on the test set after training:
#
# | setting | what each training batch gets |
# |---|---|
# | `none` | the images as they are (the seed project) |
# | `flip` | a random half mirrored left-right |
# | `translate` | shifted by up to 4 pixels (reflect padding, random crop) |
# | `flip+translate` | both |
# | `alt_flip+translate2` | mirrored on alternate epochs for alternate halves of the data (the fast recipe's flip), shifted by up to 2 pixels |
#
# Each row of the table gives n (seeds), mean ± standard deviation and a 95% t confidence interval,
# and Welch's t-test of its test accuracy against `none`: a difference is called real when p < 0.05,
# that is, when the seed-to-seed spread is unlikely to explain it.
#
# The runs train on a seeded subset of the training images (10,000 by default, validated on 2,000)
# for 10 epochs: on a 2-core CPU a run takes 3 to 4 minutes, where the full data would take 9.
# Augmentation matters most when data is scarce, which is also what a subset shows.
# Every run is saved under `RUNS_DIR/experiments/`, named by its configuration, so running this
# again reuses finished runs and an interrupted ablation continues where it stopped.
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
from cifar_utils.atomic import save_figure, write_text
from cifar_utils.data import load_cifar10

# %% tags=["parameters"]
SMOKE = NB.smoke_default()  # 2 seeds, 1 epoch on 1000 images, 1000 test images (on when $CIFAR_SMOKE is 1, or $CI is set)
SEEDS = None  # seeds per setting, 1..SEEDS (None: 5; 2 in smoke mode)
EXPERIMENT_EPOCHS = None  # epochs of every run (None: 10; 1 in smoke mode)
EXPERIMENT_SUBSET = None  # training images (None: 10000; 1000 in smoke mode; 0: all 45,000)
AUGMENTS = None  # the settings compared, "none" first (None: all five)
DEVICE = None  # "auto", "cpu" or "cuda" (None: auto)
DATA_ROOT = None  # folder holding cifar-10-batches-py/ (None: $CIFAR10_ROOT, else <project>/data)
VERIFY_DATA = True  # check the files' md5 sums (the report checks once and passes False)
OUTPUT_DIR = None  # figures and the results section go here (None: $CIFAR_OUTPUTS, else <project>/outputs)
RUNS_DIR = None  # runs are saved in RUNS_DIR/experiments/ (None: OUTPUT_DIR/runs)
REUSE = True  # load a finished run of the same configuration instead of training it again

# %%
settings = E.experiment_settings(SMOKE, seeds=SEEDS, epochs=EXPERIMENT_EPOCHS, train_subset=EXPERIMENT_SUBSET)
augments = list(AUGMENTS or E.ABLATION_AUGMENTS)
configs = E.ablation_configs(settings, augments, **({"device": DEVICE} if DEVICE else {}))
out = paths.outputs_dir(OUTPUT_DIR)
store = Path(RUNS_DIR or out / "runs") / E.EVALUATED_STORE
data = load_cifar10(paths.data_root(DATA_ROOT), download=not SMOKE, verify=VERIFY_DATA)
if SMOKE:
    data = NB.smoke_dataset(data)
print(f"{len(configs)} runs: {len(augments)} settings x {settings.describe()}; runs in {store}")

# %% [markdown]
# ## Train (or reuse) every run
#
# One line per run: validation and test accuracy and the run's wall time.

# %%
frame = E.train_runs(configs, store, data, evaluate_test=True, reuse=REUSE)

# %% [markdown]
# ## Results
#
# Accuracies in percent: mean ± standard deviation over the seeds [95% t confidence interval]. The
# last columns give the difference in test accuracy from `none` [its 95% Welch interval] and the
# p-value of Welch's t-test.

# %%
table, sentences = E.group_table(frame, "augment", reference=augments[0])
display(table)
display(Markdown("\n".join(f"- {s}" for s in sentences)))

# %%
fig = plots.plot_group_intervals(frame, "augment", title="Augmentation ablation: accuracy by setting (dots: seeds)")
save_figure(fig, out / "figures" / "04_augmentation_ablation.png");

# %% [markdown]
# ### Every seed
#
# Test accuracy (%) of each run, one column per seed: the spread the intervals come from.

# %%
(100 * frame.pivot(index="augment", columns="seed", values="test_accuracy").loc[augments]).round(2)

# %% [markdown]
# ## Provenance and the section in `outputs/results.md`
#
# The report puts this section into `outputs/results.md`.

# %%
provenance = E.provenance_line(frame)
section = E.markdown_section(
    "Augmentation ablation (notebook 04)",
    [f"The seed recipe with each augmentation setting: {settings.describe()}, "
     f"validated on {int(frame['val_images'].iloc[0]):,} images and tested once on {len(data.test_images):,} test images. "
     f"Accuracies in percent, mean ± std [95% t interval]; Δ is the difference in test accuracy from "
     f"{augments[0]} with its 95% Welch interval."],
    table, sentences,
    [f"![augmentation ablation](figures/04_augmentation_ablation.png)", "", f"Runs: {provenance}"])
write_text(out / "experiments" / "04_augmentation_ablation.md", section)
print(provenance)
