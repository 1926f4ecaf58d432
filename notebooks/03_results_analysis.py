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
# # 03 · Results analysis
#
# Loads trained runs and looks at them closely: the per-epoch table and curves of each, then for
# the first run its test accuracy and loss, the confusion matrix, precision / recall / F1 per class,
# the classes it mixes up most, its most confident mistakes and how well its confidence is
# calibrated, with conclusions written from those numbers; last, a comparison of every run present:
# the ones named in `RUNS` and, unless `COMPARE_EXPERIMENTS` is off, the run records of the experiments
# (notebooks 04, 05 and 07), narrowed by `COMPARE_WHERE`.


# %%
# %matplotlib inline
import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from cifar_utils import notebook, paths
from cifar_utils.analysis import findings, tables
from cifar_utils.core import metrics, plots
from cifar_utils.core.data import load_cifar10
from cifar_utils.core.evaluation import dtype_precision, predict_logits, replay_precision, resolve_device
from cifar_utils.runs import run_files
from cifar_utils.runs.atomic import save_figure

# %% tags=["parameters"]
SMOKE = notebook.smoke_default()  # evaluate on the first 1000 test images only (on when $CIFAR_SMOKE is 1, or $CI is set)
RUNS = None  # run names (in RUNS_DIR, then outputs/runs) or folders; the first is analysed in detail, all are compared. None: every run in RUNS_DIR (by hand: the committed runs), newest first
TEST_IMAGES = None  # evaluate on the first N test images (None: all 10,000; 1000 in smoke mode)
DEVICE = "auto"  # "auto", "cpu" or "cuda"
GALLERY_SIZE = 24  # misclassified images shown
CALIBRATION_BINS = 15  # equal-width confidence bins of the reliability diagram
COMPARE_EXPERIMENTS = False  # also list the experiments' run records (notebooks 04, 05 and 07 compare them themselves)
COMPARE_WHERE = None  # keep only runs whose config matches, e.g. {"model": "fast", "augment": ["none", "flip"]}
COMPARE_LIMIT = 40  # the most runs in the comparison table, newest first
# Plumbing: where data and files are (the report sets these; by hand the defaults are right)
DATA_ROOT = None  # folder holding cifar-10-batches-py/ (None: $CIFAR10_ROOT, else <project>/data)
VERIFY_DATA = True  # check the files' md5 sums (the report checks once and passes False)
OUTPUT_DIR = None  # figures go to OUTPUT_DIR/figures/ (None: $CIFAR_OUTPUTS, else <project>/scratch; only the report writes outputs/)
RUNS_DIR = None  # where run names are looked up (None: OUTPUT_DIR/runs)
EXPERIMENT_RUNS_DIR = None  # where those records are (None: OUTPUT_DIR/experiments/runs)

# %%
out = paths.notebook_outputs_dir(OUTPUT_DIR)
figures = out / "figures"
run_dirs = run_files.select_runs(RUNS, notebook.runs_search_path(RUNS_DIR, out))
print(notebook.where_this_writes(out))
print(f"{len(run_dirs)} run(s): {', '.join(p.name for p in run_dirs)}")

# %% [markdown]
# ## Training history of each run
#
# The per-epoch table in the seed project's format, and the training-vs-validation curves.

# %%
for run_dir in run_dirs:
    history = run_files.read_history(run_dir / run_files.HISTORY)
    display(Markdown(f"### {run_dir.name}\n\n{notebook.run_heading(run_dir)}"), tables.history_frame(history))
    fig = plots.plot_curves(history, title=run_dir.name)
    save_figure(fig, figures / f"03_curves_{run_dir.name}.png")
    display(fig)
    plt.close(fig)

# %% [markdown]
# ## Test set: the first run in detail

# %%
device = resolve_device(DEVICE)
run = run_files.load_run(run_dirs[0], device)
data = load_cifar10(paths.data_root(DATA_ROOT), download=not SMOKE, verify=VERIFY_DATA)
classes = data.classes
n_test = TEST_IMAGES or (notebook.SMOKE_TEST_IMAGES if SMOKE else len(data.test_images))
images, labels = data.test_images[:n_test], data.test_labels[:n_test]
# As the run's own final evaluation: its precision (fp32 for a bf16 run on a CPU without bf16) and test-time augmentation.
eval_dtype = replay_precision(run.config.precision, device)
logits = predict_logits(run.model, images, batch_size=run.config.eval_batch_size, device=device,
                        precision=eval_dtype, tta=run.config.tta)
probs = logits.softmax(1)
confidence, preds = probs.max(1)
summary = metrics.analysis_summary(logits, labels, classes, CALIBRATION_BINS)
pd.Series({"run": run.run_dir.name, "test images": summary["test_images"],
           "test accuracy": f"{100 * summary['test_accuracy']:.2f}%", "test loss": f"{summary['test_loss']:.4f}",
           "expected calibration error": f"{100 * summary['ece']:.2f}%"}, name="value").to_frame()

# %% [markdown]
# ### Confusion matrix
#
# Rows are the true classes, columns the predictions; each row is shown as shares of its class.

# %%
confusion = metrics.confusion_matrix(labels, preds, len(classes))
fig = plots.plot_confusion(confusion, classes, title=f"Confusion matrix: {run.run_dir.name}")
save_figure(fig, figures / "03_confusion_matrix.png")

# %% [markdown]
# ### Precision, recall and F1 per class
#
# Precision: of the images predicted as a class, the share that are. Recall: of the images of a
# class, the share found. F1: their harmonic mean.

# %%
tables.per_class_table(metrics.per_class_report(confusion), classes)

# %% [markdown]
# ### The most confused class pairs

# %%
tables.confused_pairs_table(metrics.most_confused(confusion, k=10), classes)

# %% [markdown]
# ### Misclassified test images
#
# The mistakes made with the highest confidence, titled *true → predicted (confidence)*.

# %%
wrong = metrics.top_mistakes(logits, labels, GALLERY_SIZE)
fig = plots.plot_misclassified(images[wrong], labels[wrong], preds[wrong], confidence[wrong], classes)
save_figure(fig, figures / "03_misclassified.png")

# %% [markdown]
# ### Calibration
#
# Does a prediction made with 80% confidence turn out right 80% of the time? The bars show the
# accuracy of the predictions in each confidence bin; the expected calibration error (ECE) is the
# gap between accuracy and confidence, averaged over the bins weighted by their size.

# %%
bins = metrics.calibration_bins(logits, labels, CALIBRATION_BINS)
fig = plots.plot_reliability(bins, metrics.expected_calibration_error(bins))
save_figure(fig, figures / "03_reliability.png")

# %% [markdown]
# ### What this run's test predictions say
#
# Written from the numbers above.

# %%
replayed = findings.replay_sentence(run.metrics, run.config.precision, dtype_precision(eval_dtype),
                             summary["test_accuracy"], summary["test_images"])
summary["findings"] = findings.test_findings(confusion, classes, bins, replayed)
run_files.write_analysis(run.run_dir, summary)  # the comparison below and results.md read it
display(Markdown("\n".join(f"- {sentence}" for sentence in summary["findings"])))

# %% [markdown]
# ## Comparison of all runs
#
# Test numbers come from the whole test set where the run was evaluated after training, otherwise
# from this notebook (see *Test images*). Wall time covers training and the final evaluation. The
# experiments' records (notebooks 04, 05 and 07) hold no weights, and a test score only where the
# experiment tested that run once at its end; the runs it compared on validation alone read n/a.

# %%
experiment_runs = run_files.list_runs(EXPERIMENT_RUNS_DIR or out / "experiments" / "runs") if COMPARE_EXPERIMENTS else []
compared = run_files.filter_runs([*run_dirs, *(p for p in experiment_runs if p not in run_dirs)], COMPARE_WHERE)
print(f"{len(compared)} run(s) match" + (f" {COMPARE_WHERE}" if COMPARE_WHERE else "") +
      (f"; the newest {COMPARE_LIMIT} are shown" if len(compared) > COMPARE_LIMIT else ""))
tables.comparison_frame(compared[:COMPARE_LIMIT])

# %% [markdown]
# ## Findings
#
# Written from the numbers above; the report shows this cell first.

# %% tags=["findings"]
notebook.show_findings([f"The run analysed: {run.run_dir.name}, {notebook.run_heading(run.run_dir)}", *summary["findings"]])
