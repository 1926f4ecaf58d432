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
# # 07 · Architectures at matched training-time budgets
#
# Which network should you train when you have *T* seconds of this machine? Answered per budget, at the strength
# three seeds allow.

# %% [markdown]
# ## Question and method
#
# Comparing architectures at equal *epochs* favours the expensive one, and comparing whatever each happened to
# reach favours whichever ran longest. Here each budget is a design: every architecture trains, with its own recipe,
# for the whole number of epochs that ends within the budget, and its schedule decays to zero inside it.
#
# - **Architectures:** the seed project's CNN with its recipe; the fast net with the fast recipe at its full widths
#   and, narrow, at notebook 04's proxy widths 32/64/64. ResNet-18 is not in the table; the reason, from its records,
#   is in the findings.
# - **Sizing:** `bench/size_budgets.py` measured each architecture's cost of an epoch on the machine named below and
#   set `architecture_comparison.BUDGETS` so that start-up plus the epochs use at most 85% of the budget. Each run's
#   measured training seconds are checked against its budget; a run over it is unranked.
# - **Seeds and data:** 3 seeds per configuration (this notebook's own, 21-23), the same 45,000 training images and
#   5,000 validation images for all.
# - **Ranked on validation.** Within a budget the leader is tested against the runner-up (Welch's t test on the
#   seeds' validation accuracies, Holm over the budgets). The test set is read once, for each budget's leader, and
#   chooses nothing.
#
# Runs are records under `RUNS_DIR` (default `outputs/experiments/runs/<digest>/`), committed, so a fresh clone
# rebuilds this report without training; `python -m cifar_utils architectures` trains them on an idle machine.

# %%
# %matplotlib inline

from IPython.display import Markdown, display

from cifar_utils import notebook, paths
from cifar_utils.analysis import architecture_comparison, experiments, figures, headline_records
from cifar_utils.core.data import load_cifar10
from cifar_utils.runs.atomic import save_figure, write_text

# %% tags=["parameters"]
SMOKE = notebook.smoke_default()  # tiny networks, one epoch on 1000 images, one seed (on when $CIFAR_SMOKE is 1, or $CI is set)
BUDGETS = None  # seconds -> epochs of each architecture, e.g. {60: {"seed_cnn": 3, "fast_narrow": 3}} (None: architecture_comparison.BUDGETS)
SEEDS = None  # seeds per configuration (None: 3, seeds 21-23; 1 in smoke mode)
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
plan = architecture_comparison.plan(SMOKE, BUDGETS, SEEDS, EXPERIMENT_SUBSET, DEVICE, PRECISION)
out = paths.notebook_outputs_dir(OUTPUT_DIR)
store = experiments.runs_store(out, RUNS_DIR)
data = load_cifar10(paths.data_root(DATA_ROOT), download=not SMOKE, verify=VERIFY_DATA)
if SMOKE:
    data = notebook.smoke_dataset(data)
display(Markdown(f"Every run: {plan.describe()}.\n\n" + "\n".join(f"- **{a}**: {what}" for a, what in architecture_comparison.ARCHITECTURES.items())))

# %% [markdown]
# ## Training every configuration
#
# Runs whose records are present are reused; the code rendering shows one line per run.

# %%
configs, labels = architecture_comparison.runs_to_train(plan)
frame = experiments.train_runs(configs, store, data, rerun=RERUN, labels=labels)
table = architecture_comparison.budget_table(frame, plan)

# %% [markdown]
# ## Each budget's configurations, ranked on validation
#
# Validation accuracy is each recipe's own evaluation (the fast nets with their test-time augmentation, the seed CNN
# without). SD and the 95% t interval are over the seeds. "over budget": a seed's training took longer than the
# budget, so the configuration is not ranked there.

# %%
architecture_comparison.shown_table(table)

# %% [markdown]
# ## The leaders against the runner-up, and the test set once

# %%
tests = architecture_comparison.leader_tests(table, frame)
tested = experiments.test_results(architecture_comparison.chosen_configs(table, plan), store, data)
test_frame = tested.merge(frame[["run", "architecture", "epochs"]], on="run")
excluded = architecture_comparison.excluded_runs(store, plan)
sentences = architecture_comparison.findings(table, tests, test_frame)
reasons = architecture_comparison.excluded_note(excluded, plan)
display(Markdown("\n".join(f"- {s}" for s in [*sentences, *reasons])))

# %% [markdown]
# ## Accuracy against training time
#
# Each point is one configuration (mean over its seeds, their SD as error bars), labelled with its epochs; those on
# the Pareto front (no other is both faster and more accurate on validation) are ringed. The time axis is logarithmic.

# %%
rungs = architecture_comparison.rung_table(table)
machine = ", ".join(sorted({str(d) for d in frame["device"].dropna()})) or "this machine"
fig = figures.plot_pareto(rungs, title="Validation accuracy against training time", machine=machine)
save_figure(fig, out / "figures" / "07_architectures.png")

# %% [markdown]
# ## Provenance and the section in `outputs/results.md`

# %%
provenance = experiments.provenance_line(frame)
section = experiments.markdown_section(
    "Architectures at matched training-time budgets (notebook 07)",
    [f"Every run: {plan.describe()}. Each architecture trained with its own recipe for the epochs that end within the budget on "
     f"{architecture_comparison.SIZED_ON}; ranked on validation accuracy (mean over seeds, SD and 95% t interval over the seeds), "
     f"the test set read once for each budget's leader."],
    architecture_comparison.shown_table(table).set_index("budget s"), [*sentences, *reasons],
    ["![architectures](../figures/07_architectures.png)", "", f"Runs: {provenance}"])
write_text(out / "experiments" / "07_architectures.md", section)
record = headline_records.architecture_record(table, tests, test_frame, frame, [store / r for r in frame["run"]],
                                              architecture_comparison.SIZED_ON, reasons)
headline_records.write(record, out)
print(provenance)

# %% [markdown]
# ## Findings
#
# Written from the numbers above; the report shows this cell first.

# %% tags=["findings"]
notebook.show_findings([*sentences, *reasons])
