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
# # 01 · Data exploration
#
# What the model will see: how CIFAR-10 is split into training, validation and test images, how
# balanced the ten classes are, what the images look like, and the per-channel statistics the
# model normalises its input with.


# %%
# %matplotlib inline

from cifar_utils import notebook, paths
from cifar_utils.analysis import tables
from cifar_utils.core import metrics, plots
from cifar_utils.core.data import load_cifar10, split_dataset
from cifar_utils.runs.atomic import save_figure

# %% tags=["parameters"]
SMOKE = notebook.smoke_default()  # smoke mode: never download, fewer sample images (on when $CIFAR_SMOKE is 1, or $CI is set)
VAL_SIZE = 5000  # validation images held out of the 50,000 training images, as in training
SAMPLES_PER_CLASS = 10  # images per class in the sample grid
# Plumbing: where data and files are (the report sets these; by hand the defaults are right)
DATA_ROOT = None  # folder holding cifar-10-batches-py/ (None: $CIFAR10_ROOT, else <project>/data)
VERIFY_DATA = True  # check the files' md5 sums (the report checks once and passes False)
OUTPUT_DIR = None  # figures go to OUTPUT_DIR/figures/ (None: $CIFAR_OUTPUTS, else <project>/scratch; only the report writes outputs/)

# %%
figures = paths.notebook_outputs_dir(OUTPUT_DIR) / "figures"
data = load_cifar10(paths.data_root(DATA_ROOT), download=not SMOKE, verify=VERIFY_DATA)
# The same split as training uses: stratified, 500 validation images per class by default.
split = split_dataset(data, VAL_SIZE)
classes = data.classes
print(f"{len(split.train_images)} training, {len(split.val_images)} validation and {len(data.test_images)} test images "
      f"of shape {tuple(data.train_images.shape[1:])}, {data.train_images.dtype}, from {data.root}")

# %% [markdown]
# ## Split sizes and class balance
#
# The validation images are held out of the 50,000 training images with the same share of every
# class (a stratified split), so all three splits stay balanced. These counts are checked by
# `tests/test_report.py`: a change in the split fails it.

# %%
counts = metrics.split_counts(split, data.test_labels)
tables.counts_table(counts, classes)

# %%
fig = plots.plot_class_balance(counts, classes)
save_figure(fig, figures / "01_class_balance.png")

# %% [markdown]
# ## Sample images
#
# Randomly chosen (seeded) training images, one row per class: 32×32 pixels, often off-centre,
# partly hidden or against busy backgrounds.

# %%
fig = plots.plot_class_samples(split.train_images, split.train_labels, classes,
                               per_class=min(SAMPLES_PER_CLASS, 6) if SMOKE else SAMPLES_PER_CLASS)
save_figure(fig, figures / "01_class_samples.png")

# %% [markdown]
# ## Normalisation constants
#
# The model subtracts the per-channel mean of the training split and divides by its standard
# deviation (on the 0-255 scale); the constants travel inside every checkpoint. They are computed
# here from the pixel-value counts, which gives the same numbers as `cifar_utils.core.data.channel_stats`
# (what training uses) without a float copy of every pixel. Checked by the notebook tests.

# %%
hist = metrics.channel_histograms(split.train_images)
mean, std = metrics.histogram_stats(hist)
tables.constants_table(mean, std)

# %% [markdown]
# ## Pixel histograms
#
# The share of pixels at each value, per channel. Blue sits lower than red and green on average,
# and every channel has a spike at 255 from saturated pixels (white backgrounds, bright skies).

# %%
fig = plots.plot_channel_histograms(hist, mean, std)
save_figure(fig, figures / "01_channel_histograms.png")

# %% [markdown]
# ## Mean image of each class
#
# The average of every training image of a class. Backgrounds dominate: blue-grey skies behind
# airplanes, blue water under ships, green and brown surroundings for deer, frogs and horses.
# A classifier that only learned these colours would already beat chance.

# %%
means = metrics.class_mean_images(split.train_images, split.train_labels, len(classes))
fig = plots.plot_mean_images(means, classes)
save_figure(fig, figures / "01_mean_images.png")

# %% [markdown]
# ## Findings
#
# Written from the numbers above; the report shows this cell first.

# %% tags=["findings"]
per_class = [int((split.train_labels == c).sum()) for c in range(len(classes))]
notebook.show_findings([
    f"{len(split.train_images):,} training, {len(split.val_images):,} validation and {len(data.test_images):,} test images "
    f"in {len(classes)} classes; the training split holds {min(per_class):,} to {max(per_class):,} images per class.",
    "Channel means (0-1 scale, training split): " + ", ".join(f"{c} {m:.3f}" for c, m in zip("RGB", mean))
    + "; standard deviations: " + ", ".join(f"{c} {s:.3f}" for c, s in zip("RGB", std)) + ".",
])
