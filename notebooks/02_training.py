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
# # 02 · Training
#
# Train one model and save the run under `outputs/runs/<name>/` (config, per-epoch history,
# checkpoint, metrics, curves). The default is the seed project's recipe: the baseline CNN, Adam at
# 1e-3, batch size 128, 10 epochs, no augmentation, 45,000 training and 5,000 validation images.


# %%
# %matplotlib inline

import pandas as pd
from IPython.display import Markdown, display

from cifar_utils import notebook, paths
from cifar_utils.analysis import tables
from cifar_utils.core.data import load_cifar10
from cifar_utils.core.plots import plot_curves
from cifar_utils.runs import run_files
from cifar_utils.runs.atomic import save_figure
from cifar_utils.runs.training import fit_or_reuse

# %% tags=["parameters"]
# What a reader changes: the recipe and its main knobs (None keeps the recipe's value), and the run's name
SMOKE = notebook.smoke_default()  # one epoch on 1000 images, no test pass (on when $CIFAR_SMOKE is 1, or $CI is set)
RECIPE = "seed"  # starting configuration: "seed" or "fast" (cifar_utils.core.config.RECIPES)
MODEL = None  # network architecture
EPOCHS = None  # epochs
LR = None  # learning rate
BATCH_SIZE = None  # training batch size
OPTIMIZER = None  # optimizer
AUGMENT = None  # training augmentation
SEED = None  # seed of the initialisation, data order and augmentation
TRAIN_SUBSET = None  # train on only this many images (smoke runs)
RUN_NAME = None  # None: <recipe>-<model>-seed<seed>, then what differs from the recipe (e.g. -epochs1), "-smoke" in smoke mode
REUSE = True  # load the run instead of training when RUN_NAME already holds it finished with this configuration
OVERWRITE = False  # replace a run of another configuration that RUN_NAME holds (never done otherwise)
RESUME = False  # continue an interrupted run in RUN_NAME from its last finished epoch
# Every other training knob (cifar_utils.core.config.TrainConfig); None keeps the recipe's value
EXTRA_MODULES = None  # modules that register your own models or augmentations, e.g. "my_models" (docs/extending.md)
MODEL_KWARGS = None  # the network's own options as JSON, e.g. '{"widths": [32, 64, 64]}'
MOMENTUM = None  # SGD momentum
NESTEROV = None  # Nesterov momentum (SGD)
WEIGHT_DECAY = None  # weight decay
LABEL_SMOOTHING = None  # label smoothing of the cross-entropy, in [0, 1)
SCHEDULE = None  # learning-rate schedule
WARMUP_EPOCHS = None  # linear warm-up, in epochs
VAL_SIZE = None  # validation images held out of the 50,000 (0: train on all)
DEVICE = None  # where to train: auto is CUDA when present
PRECISION = None  # auto: bf16 on CUDA and on CPUs with native bf16, else fp32 (a run records the one it used)
CHANNELS_LAST = None  # channels-last memory layout
EVAL_BATCH_SIZE = None  # batch size of evaluation
WARMUP_FRACTION = None  # warm-up as a share of all steps (instead of warmup_epochs)
BN_BIAS_LR_SCALE = None  # lr multiplier for 1-D parameters (BatchNorm and whitening biases)
LR_PER_1024 = None  # lr is per 1024 images: scales with batch_size/1024, as does the per-step decay
HEAD_LR_SCALE = None  # lr multiplier for the linear head (muon: per image of the batch)
MUON_MOMENTUM = None  # Nesterov momentum of Muon's filter updates
WHITEN_BIAS_EPOCHS = None  # train the whitening bias only this many first epochs, its lr decaying to zero (muon; 0: like the other biases)
AVERAGING = None  # weight averaging
AVERAGING_DECAY = None  # decay of the weight average, in [0, 1)
AVERAGING_EVERY = None  # update the weight average every this many steps
TTA = None  # test-time augmentation of the final evaluation
TTA_SHARE = None  # share of the images, least confident first, that get the test-time augmentation
# Plumbing: where data and files are (the report sets these; by hand the defaults are right)
DATA_ROOT = None  # folder holding cifar-10-batches-py/ (None: $CIFAR10_ROOT, else <project>/data)
VERIFY_DATA = True  # check the files' md5 sums (the report checks once and passes False)
OUTPUT_DIR = None  # figures and output.png go here (None: $CIFAR_OUTPUTS, else <project>/scratch; only the report writes outputs/)
RUNS_DIR = None  # the run is saved in RUNS_DIR/RUN_NAME/ (None: OUTPUT_DIR/runs)

# %%
notebook.import_modules(EXTRA_MODULES)  # first: the config may name a model or augmentation they register
config = notebook.training_config(RECIPE, SMOKE, **notebook.train_overrides(globals()))
out = paths.notebook_outputs_dir(OUTPUT_DIR)
run_name = RUN_NAME or run_files.default_run_name(RECIPE, config, SMOKE)
search = notebook.runs_search_path(RUNS_DIR, out)  # where the run is written, then the committed runs (read only)
run_dir = search[0] / run_name
print(notebook.where_this_writes(out))
tables.config_frame(config, name=run_name)

# %% [markdown]
# ## Train
#
# A progress bar per epoch shows the running loss and accuracy; one line per finished epoch gives
# the validation result. The checkpoint is rewritten after every epoch, so an interrupted run can
# be continued with `python -m cifar_utils train --resume <run folder>`, or here with `RESUME = True`.
# Re-running this notebook reuses a finished run of the same configuration (`REUSE`), here or among the
# committed runs in `outputs/runs/`. A changed parameter names a new run folder; a run of another
# configuration is never replaced unless `OVERWRITE = True`. The line under the progress output says which
# happened (trained now, resumed, or reused) and where the run is kept.

# %%
data = load_cifar10(paths.data_root(DATA_ROOT), download=not SMOKE, verify=VERIFY_DATA)
result = fit_or_reuse(config, dataset=data, run_dir=run_dir, reuse=REUSE, resume=RESUME, overwrite=OVERWRITE,
                      reuse_from=[folder / run_name for folder in search[1:]], say_reused=False, progress=True,
                      evaluate_test=not SMOKE)
display(Markdown(notebook.run_story(result)))

# %% [markdown]
# ## Per-epoch results
#
# In the seed project's format: losses to four decimals, accuracies in percent.

# %%
tables.history_frame(result.history)

# %%
fig = plot_curves(result.history, title=f"{run_name}: {config.model}, {config.optimizer} lr {config.lr:g}")
save_figure(fig, out / "figures" / "02_training_curves.png")
save_figure(fig, out / paths.OUTPUT_PNG)  # the seed's file name for this plot

# %% [markdown]
# ## Summary
#
# The test set is used once, after training, never for choosing anything (smoke runs skip it;
# notebook 03 evaluates them on part of it).

# %%
m = result.metrics
pd.Series({"run": run_name, "validation accuracy": f"{100 * m['val_accuracy']:.2f}%",
           "test accuracy": "not evaluated (smoke)" if m["test_accuracy"] is None else f"{100 * m['test_accuracy']:.2f}%",
           "test loss": "n/a" if m["test_loss"] is None else f"{m['test_loss']:.4f}",
           "training images": m["train_images"],
           "wall time (recorded when trained)" if result.reused else "wall time": f"{m['seconds']:.1f} s",
           "images per second": f"{m['images_per_second']:.0f}",
           "device": m["provenance"]["device_name"], "git commit": m["provenance"]["git_commit"]}, name="value").to_frame()

# %% [markdown]
# ## Findings
#
# Written from the numbers above; the report shows this cell first.

# %% tags=["findings"]
how = "reused from its records" if result.reused else "trained now"
notebook.show_findings([
    f"Run {run_name} ({how}): {config.model} with {config.optimizer} at lr {config.lr:g}, {len(result.history)} epochs on "
    f"{m['train_images']:,} training images, one seed ({config.seed}), so no interval.",
    f"Validation accuracy {100 * m['val_accuracy']:.2f}% on {m.get('val_images', 0):,} held-out images"
    + (f" with test-time augmentation ({m['tta']}; {100 * m['val_accuracy_no_tta']:.2f}% without)"
       if m.get("tta") not in (None, "none") and m.get("val_accuracy_no_tta") is not None else "")
    + ("" if m["test_accuracy"] is None else f"; test accuracy {100 * m['test_accuracy']:.2f}%, read once after training")
    + ".",
    f"Training and evaluation took {m['seconds']:.0f} s on {m['provenance'].get('cpu') or m['provenance']['device_name']} "
    f"at {result.config.precision}" + (" (recorded when it was trained)" if result.reused else "") + ".",
])
