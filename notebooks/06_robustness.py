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
# # 06 · Robustness, calibration and what the models look at
#
# **The question.** Accuracy on the clean test set is one number. How do the trained models fail when
# the images are degraded as real photographs are (noise, blur, digital artefacts)? Is their confidence
# honest, and can one number, a temperature fitted on held-out images, make it so? And what in an image
# drives a prediction?
#
# What this notebook does, for every run in the runs folder (seeds of one configuration are pooled as
# mean ± std):
#
# 1. **Corrupted test sets, made here.** CIFAR-10-C cannot be downloaded on these machines, so the test
#    images are corrupted locally with the CIFAR parameters of Hendrycks & Dietterich (ICLR 2019):
#    13 corruptions in three families, 5 severities each, seeded and cached on disk
#    (`cifar_utils/corruptions.py` lists where ours differ from the paper's code).
# 2. **Accuracy per corruption and severity**, the mean corruption accuracy (over every corruption and
#    severity) and its relative drop from the clean accuracy; a heatmap per model and a severity curve per family.
# 3. **Temperature scaling** fitted on training images the run never trained on (its validation split),
#    never on the test set; NLL, Brier score and ECE before and after, on the clean and the corrupted
#    test sets, with reliability diagrams side by side. A run that trained on every training image has
#    nothing left to fit on, and says so.
# 4. **Grad-CAM and saliency** (Captum) for correct and misclassified test images of each model's
#    weakest classes.
#
# Every prediction is one plain forward pass at the run's precision, without test-time augmentation,
# so clean and corrupted numbers compare like with like. On a 2-core CPU the full run costs the
# generation once (then the cache) and 65 passes over 10,000 images per model.


# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import torch
from IPython.display import Markdown, display

from cifar_utils import notebook, paths
from cifar_utils.analysis import corruptions, explanations, headline_records, robustness, robustness_figures
from cifar_utils.analysis.experiments import markdown_section
from cifar_utils.core.data import load_cifar10
from cifar_utils.core.evaluation import resolve_device
from cifar_utils.runs import run_files
from cifar_utils.runs.atomic import save_figure, write_text
from cifar_utils.runs.training import fit_or_reuse

# %% tags=["parameters"]
SMOKE = notebook.smoke_default()  # 200 test images, severities 1 and 5, a 1-epoch smoke model if no run exists (on when $CIFAR_SMOKE is 1, or $CI is set)
RUNS = None  # run names (in RUNS_DIR) or folders. None: every run in RUNS_DIR
CORRUPTIONS = None  # corruption names (None: all 13 of cifar_utils.analysis.corruptions.CORRUPTIONS)
SEVERITIES = None  # severities 1-5 evaluated (None: all five; 1 and 5 in smoke mode)
CORRUPTION_SEED = 0  # seed of the corruptions' randomness
TEST_IMAGES = 2000  # the first N test images: the report's 2,000 (its cache serves them); 10000 for all (5x the time; the cost is printed first); 200 in smoke mode
DEVICE = "auto"  # "auto", "cpu" or "cuda"
CALIBRATION_IMAGES = None  # at most this many held-out images fit T (None: 10,000; 1000 in smoke mode)
CALIBRATION_BINS = 15  # equal-width confidence bins of ECE and the reliability diagrams
GALLERY_CLASSES = 2  # the weakest classes shown in the explanation gallery
GALLERY_PER_KIND = None  # correct and misclassified images per class (None: 4; 2 in smoke mode)
# Plumbing: where data and files are (the report sets these; by hand the defaults are right)
DATA_ROOT = None  # folder holding cifar-10-batches-py/ (None: $CIFAR10_ROOT, else <project>/data)
VERIFY_DATA = True  # check the files' md5 sums (the report checks once and passes False)
OUTPUT_DIR = None  # figures and the results section go here (None: $CIFAR_OUTPUTS, else <project>/scratch; only the report writes outputs/)
RUNS_DIR = None  # where run names are looked up (None: OUTPUT_DIR/runs)
CACHE_DIR = None  # corrupted test sets are kept here between runs (None: outputs/cache/corruptions, git-ignored, shared with the report)

# %%
out = paths.notebook_outputs_dir(OUTPUT_DIR)
figures = out / "figures"
search = notebook.runs_search_path(RUNS_DIR, out)  # where runs are written, then the committed ones (read only)
runs_dir = search[0]
print(notebook.where_this_writes(out))
cache_dir = CACHE_DIR or corruptions.default_cache_dir(paths.committed_outputs_dir())
names, severities = corruptions.requested(CORRUPTIONS, SEVERITIES or ((1, 5) if SMOKE else None))
per_kind = GALLERY_PER_KIND or (2 if SMOKE else 4)
device = resolve_device(DEVICE)
data = load_cifar10(paths.data_root(DATA_ROOT), download=not SMOKE, verify=VERIFY_DATA)
classes = data.classes
n_test = 200 if SMOKE else min(TEST_IMAGES or len(data.test_images), len(data.test_images))
images, labels = data.test_images[:n_test], data.test_labels[:n_test]
if SMOKE and not RUNS and not run_files.list_runs(search[-1]):
    # Nothing to evaluate yet: a one-epoch model on 1000 images, enough to run every cell.
    config = notebook.training_config("seed", smoke=True)
    fit_or_reuse(config, dataset=data, run_dir=runs_dir / run_files.default_run_name("seed", config, smoke=True),
                 progress=False, evaluate_test=False, log=lambda *_: None)
run_dirs = run_files.select_runs(RUNS, search)
groups = robustness.group_runs(run_dirs)
print(f"{len(run_dirs)} run(s): {', '.join(p.name for p in run_dirs)}; {len(names)} corruptions x severities "
      f"{severities} on {n_test:,} test images")
print(robustness.cost_line(n_test, len(names) * len(severities), len(run_dirs), cache_dir))

# %% [markdown]
# ## The corrupted test sets
#
# Each corrupted set is the same test images with one corruption at one severity; it is made once and
# then read from the cache (keyed by the corruption, severity, seed, code version and the images).
# Each model predicts every set as it is loaded. The table gives the time each corruption took to make
# (all its severities), as recorded when it was made.

# %%
loaded = {}
for run_dir in run_dirs:
    run = run_files.load_run(run_dir, device)
    run.config = run_files.recorded_precision(run.config, run_dir, device)
    ev = robustness.Evaluated(name=run_dir.name, group=groups[run_dir], seed=run.config.seed, config=run.config,
                     clean=robustness.logits_of(run, images, device))
    loaded[run_dir.name] = (run, ev)
generation, examples = robustness.evaluate_corruptions(loaded, images, names, severities, CORRUPTION_SEED, cache_dir, device)
evaluated = [ev for _, ev in loaded.values()]
made = generation.groupby("corruption", sort=False)["seconds"].sum().round(2).to_frame("seconds to make")
made.loc["all"] = generation["seconds"].sum().round(2)
print(robustness.timing_line(generation, len(loaded)))

# %%
fig = robustness_figures.plot_corruption_examples(images[0], examples)
save_figure(fig, figures / "06_corruption_examples.png")

# %% [markdown]
# ## Accuracy under corruption
#
# Accuracies in percent. *Mean corruption accuracy* averages every corruption and severity evaluated;
# the *relative drop* is (clean − mean corruption accuracy) / clean: the share of its accuracy a model
# loses, which compares models of different clean accuracy more fairly than the difference.

# %%
frame = robustness.accuracy_frame(evaluated, labels)
summary = robustness.robustness_summary(frame)
headline = robustness.headline_table(summary, frame)
headline

# %%
group_names = list(dict.fromkeys(groups.values()))
fig = robustness_figures.plot_accuracy_heatmaps(frame, group_names)
save_figure(fig, figures / "06_corruption_heatmap.png")

# %%
fig = robustness_figures.plot_severity_curves(frame, group_names)
save_figure(fig, figures / "06_severity_curves.png")

# %% [markdown]
# ## Calibration: temperature scaling fitted on held-out images
#
# A temperature T divides the logits; it never changes a prediction, only its confidence. T is
# fitted by minimising the NLL on training images the run never trained on: its validation split,
# or, for a run without one that trained on a subset, the training images outside the subset
# (`cifar_utils.analysis.calibration.held_out_images`); the test set only measures. NLL and Brier score are proper scores (lower is better); ECE is the
# count-weighted gap between confidence and accuracy over the confidence bins. *severity k* pools
# every corruption at that severity; *all corrupted* pools every corrupted set.

# %%
robustness.fit_temperatures(loaded, data, device, limit=CALIBRATION_IMAGES or (1000 if SMOKE else 10000))
calibration = robustness.calibration_frame(evaluated, labels, CALIBRATION_BINS)
for ev in evaluated:
    if ev.temperature is None:
        display(Markdown(f"**{ev.name}**: {ev.held_out}."))
if len(calibration):
    shown = calibration.drop(columns="group").set_index(["run", "test set"])
    display(shown.style.format({c: "{:.2%}" if c.startswith("ece") else "{:.4f}" for c in shown.columns}))

# %%
for run, ev in loaded.values():
    if ev.temperature is None:
        continue
    sets = {"clean": (ev.clean, labels)}
    if ev.corrupted:
        sets["all corrupted"] = (torch.cat(list(ev.corrupted.values())), labels.repeat(len(ev.corrupted)))
    fig = robustness_figures.plot_reliability_pairs(ev.name, sets, ev.temperature, CALIBRATION_BINS)
    save_figure(fig, figures / f"06_reliability_{ev.name}.png")
    display(fig)
    plt.close(fig)

# %% [markdown]
# ## What the models look at
#
# For each model's weakest classes (lowest clean accuracy), its first correct and first misclassified
# test images. Grad-CAM (at the network's last convolution) shows which regions raise the predicted
# class; the saliency map shows which pixels would change its logit most. Captions read
# *true class → prediction (confidence)*.

# %%
for run, ev in loaded.values():
    weakest = robustness.weakest_classes(ev.clean, labels, GALLERY_CLASSES)
    chosen = robustness.gallery_indices(ev.clean, labels, weakest, per_kind)
    idx = torch.tensor([i for i, _, _ in chosen], dtype=torch.long)
    probs = ev.clean[idx].softmax(1)
    preds = probs.argmax(1)
    cams = explanations.normalise_maps(explanations.grad_cam(run.model, images[idx], preds)) if len(idx) else torch.empty(0, 32, 32)
    sal = explanations.normalise_maps(explanations.saliency(run.model, images[idx], preds)) if len(idx) else torch.empty(0, 32, 32)
    captions = [f"{classes[c]}\n→ {classes[int(p)]} ({100 * float(q.max()):.0f}%)" for (_, c, _), p, q in zip(chosen, preds, probs)]
    display(Markdown(f"**{ev.name}**: weakest classes {', '.join(classes[c] for c in weakest)}"))
    fig = robustness_figures.plot_explanations(ev.name, images[idx], cams, sal, captions)
    save_figure(fig, figures / f"06_explanations_{ev.name}.png")
    display(fig)
    plt.close(fig)

# %% [markdown]
# ## Conclusions
#
# Written from the numbers above; the same section goes into `outputs/results.md`.

# %%
sentences = robustness.conclusions(summary, frame, calibration, evaluated)
display(Markdown("\n".join(f"- {s}" for s in sentences)))

# %%
footer = ["![the corruptions](../figures/06_corruption_examples.png)", "",
          "![corruption heatmap](../figures/06_corruption_heatmap.png)", "",
          "![severity curves](../figures/06_severity_curves.png)", ""]
for ev in evaluated:
    if ev.temperature is not None:
        footer += [f"![calibration of {ev.name}](../figures/06_reliability_{ev.name}.png)", ""]
    footer += [f"![what {ev.name} looks at](../figures/06_explanations_{ev.name}.png)", ""]
section = markdown_section(
    "Robustness to corruptions and calibration (notebook 06)",
    [f"{len(names)} corruptions x severities {', '.join(map(str, severities))} of the first {n_test:,} test images "
     f"(CIFAR-10-C's CIFAR parameters, made here, seed {CORRUPTION_SEED}); one plain forward pass per image. "
     f"Accuracies as mean ± std over seeds where a model has several."],
    headline, sentences, footer)
write_text(out / "experiments" / "06_robustness.md", section)
write_text(out / "experiments" / "06_robustness_accuracy.csv", frame.to_csv(index=False))
headline_records.write(headline_records.robustness_record(summary, frame, calibration, evaluated, n_test, run_dirs), out)
print(f"wrote the results section and the accuracy table ({len(frame)} rows)")

# %% [markdown]
# ## Findings
#
# Written from the numbers above; the report shows this cell first.

# %% tags=["findings"]
notebook.show_findings(sentences[:6])
