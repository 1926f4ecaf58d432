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
# # 05 · Hyperparameter search with Optuna
#
# Can the fast recipe's main knobs (learning rate, weight decay, batch size, label smoothing) be set
# better than the recipe sets them, at a fixed number of epochs? An [Optuna](https://optuna.org) study
# searches them:
#
# - **TPE** proposes each trial's knobs from the trials so far; **successive halving** stops a trial
#   whose validation accuracy after an epoch is behind its peers at that epoch.
# - Every trial trains with the same seed and is scored on the **validation split only**: the trials
#   never read a test image.
# - The best few trials' knobs are then **trained again on fresh seeds**, beside the recipe's own knobs
#   on the same seeds: one trial's score is optimistic (it won partly by luck), several seeds are not.
#   The configuration with the best mean validation accuracy is chosen.
# - Only the chosen configuration is evaluated on the **test set, once**, at the end.
#
# The study lives in Optuna storage: by default a journal file beside the run records
# (`outputs/experiments/studies.journal`), or any database URL Optuna accepts (`STORAGE`, e.g.
# `postgresql://user@host/db`). More machines can work on the same study meanwhile; each runs
#
#     python -m cifar_utils worker --study NAME --storage URL [--trials N]
#
# with the name and storage printed below (`python -m cifar_utils search create` creates the study with
# this notebook's settings without running a trial, and prints that command). A worker that dies
# mid-trial leaves a failed trial that is run again once; no trial is lost or counted twice. This
# notebook creates the study, runs the trials still missing in this process, and reads every result
# from the storage, so running it again continues the study instead of starting over. A changed
# search (other budget, space or number of trials) gets a study of its own name.
#
# The re-trained runs are saved under `RUNS_DIR` (default `outputs/experiments/runs/<digest>/`), keyed by
# configuration and shared with notebook 04: the recipe's own runs are notebook 04's full recipe
# when both use the same budget. Their records are committed; `RERUN=True` trains them again.


# %%
# %matplotlib inline

import dataclasses

import pandas as pd
from IPython.display import Markdown, display

from cifar_utils import notebook, paths
from cifar_utils.analysis import comparisons, experiments, figures, headline_records, search_storage, stats
from cifar_utils.analysis.search import (
    best_trials,
    default_name,
    describe_knobs,
    describe_space,
    format_trials,
    knob_values,
    load_search,
    notebook_search,
    notebook_storage,
    run_search,
    trial_config,
    trials_table,
    wait_for_workers,
    worker_command,
)
from cifar_utils.analysis.tables import markdown_table
from cifar_utils.core.data import load_cifar10
from cifar_utils.runs.atomic import save_figure, write_text

# %% tags=["parameters"]
SMOKE = notebook.smoke_default()  # 2 trials, tiny widths, one epoch on 1000 images (on when $CIFAR_SMOKE is 1, or $CI is set)
N_TRIALS = None  # trials the study runs in all, here and on other workers (None: 12; 2 in smoke mode)
TOP_K = None  # best trials trained again on fresh seeds (None: 2; 2 in smoke mode)
RETRAIN_SEEDS = None  # fresh seeds of that re-training, 1 to RETRAIN_SEEDS (None: 4; 2 in smoke mode)
STUDY = None  # the study's name (None: one derived from the search's settings)
STORAGE = None  # a journal file path or a database URL (None: the journal beside RUNS_DIR)
SEARCH_SEED = 0  # seed of this process's TPE sampler
WAIT_FOR_WORKERS = 600  # seconds to wait for trials still running on other workers before re-training the best (0: none)
EQUIVALENCE_MARGIN = 0.01  # TOST margin of the comparisons with the recipe (a fraction: 0.01 is one point)
EXPERIMENT_EPOCHS = None  # epochs of every trial and run (None: 2; the recipe's own is 8; 1 in smoke mode)
EXPERIMENT_WIDTHS = None  # the fast net's three widths (None: [32, 64, 64]; the recipe's are [64, 256, 256]; [8, 16, 16] in smoke mode)
EXPERIMENT_SUBSET = None  # training images (None: all 45,000; 1000 in smoke mode)
EXPERIMENT_VAL_SIZE = None  # validation images held out (None: 5000; a subset keeps a fifth of its size)
EXPERIMENT_BATCH_SIZE = None  # training batch size (None: 500; the recipe's is 2000; 100 in smoke mode)
DEVICE = None  # "auto", "cpu" or "cuda" (None: auto)
PRECISION = None  # "auto", "fp32", "bf16" (None: auto)
RERUN = False  # train the re-trained runs again even when their records are there
# Plumbing: where data and files are (the report sets these; by hand the defaults are right)
DATA_ROOT = None  # folder holding cifar-10-batches-py/ (None: $CIFAR10_ROOT, else <project>/data)
VERIFY_DATA = True  # check the files' md5 sums (the report checks once and passes False)
OUTPUT_DIR = None  # figures and the results section go here (None: $CIFAR_OUTPUTS, else <project>/scratch; only the report writes outputs/)
RUNS_DIR = None  # run records (None: OUTPUT_DIR/experiments/runs)

# %%
budget = experiments.budget(SMOKE, EXPERIMENT_EPOCHS, EXPERIMENT_WIDTHS, EXPERIMENT_SUBSET, EXPERIMENT_VAL_SIZE, DEVICE, PRECISION,
                  EXPERIMENT_BATCH_SIZE)
n_trials, top_k, retrain_seeds = experiments.search_settings(SMOKE, N_TRIALS, TOP_K, RETRAIN_SEEDS)
out = paths.notebook_outputs_dir(OUTPUT_DIR)
store = experiments.runs_store(out, RUNS_DIR)
storage = STORAGE or notebook_storage(store)
planned = notebook_search(budget, n_trials)  # decided there, so `python -m cifar_utils search create` agrees
base, space = planned.base, planned.space  # seed 0 for every trial; the re-training uses fresh ones
study_name = STUDY or default_name(base, space, n_trials)
data = load_cifar10(paths.data_root(DATA_ROOT), download=not SMOKE, verify=VERIFY_DATA)
if SMOKE:
    data = notebook.smoke_dataset(data)
display(Markdown(f"Every trial and run: {budget.describe()}. Searched: {describe_space(space)}.\n\n"
                 f"Study `{study_name}` in `{search_storage.describe(storage)}`, {n_trials} trials. Other machines join it with\n\n"
                 f"    {worker_command(study_name, storage)}"))

# %% [markdown]
# ## The trials
#
# The trials still missing run here, one line each. Trials other workers are still running are then
# waited for, up to `WAIT_FOR_WORKERS` seconds (one line says whether all finished or which are left
# behind), and the table shows every trial in the storage, whichever worker ran it. A trial whose
# loss diverged ends FAILED: a result, not an error.

# %%
run_search(study_name, storage, base, space, n_trials, dataset=data, seed=SEARCH_SEED)
study, search = load_search(study_name, storage)
wait_for_workers(study, WAIT_FOR_WORKERS)  # the best trials are chosen from finished ones only: wait for the others
trials = trials_table(study)
shown_trials = format_trials(trials)
shown_trials

# %%
fig = figures.plot_trials(trials, title="Optuna search: validation accuracy of each trial")
save_figure(fig, out / "figures" / "05_hyperparameter_search.png")

# %% [markdown]
# ## The best trials trained again on fresh seeds
#
# The best trials' knobs and the recipe's own, each on the same fresh seeds, scored on validation.
# Δ is each configuration's paired difference from the recipe, with its 95% interval and Holm's
# correction across the table.

# %%
best = best_trials(study, top_k)
candidates = {"fast recipe": base, **{f"trial {t.number}": trial_config(search, t.params) for t in best}}
configs = [dataclasses.replace(c, seed=s) for c in candidates.values() for s in range(1, retrain_seeds + 1)]
labels = [{"configuration": name} for name in candidates for _ in range(retrain_seeds)]
retrained = experiments.train_runs(configs, store, data, rerun=RERUN, allow_diverged=True, labels=labels)
knobs = pd.DataFrame([{"configuration": name, **knob_values(c)} for name, c in candidates.items()])
summary = experiments.validation_table(retrained, "configuration").join(knobs.set_index("configuration"))
display(summary.drop(columns="mean"))

# %%
finite = retrained.groupby("configuration", sort=False)["val_accuracy"].transform(lambda v: v.notna().all())
comparable = retrained[finite.astype(bool)]
table = comparisons.compare_arms(comparable, "configuration", "fast recipe", value="val_accuracy", delta=EQUIVALENCE_MARGIN,
                       what="validation accuracy") if comparable["configuration"].eq("fast recipe").any() else None
if table is not None and len(table):
    display(comparisons.format_table(table))
    display(Markdown("\n".join(f"- {s}" for s in table["sentence"])))
diverged = sorted(set(retrained["configuration"]) - set(comparable["configuration"]))
if diverged:
    display(Markdown(f"Diverged on some seed, so not candidates: {', '.join(diverged)}."))

# %%
fig = figures.plot_group_intervals(retrained.dropna(subset=["val_accuracy"]), "configuration",
                                 metrics=(("val_accuracy", "Validation"),),
                                 title="The best trials and the recipe on fresh seeds (dots: seeds)")
save_figure(fig, out / "figures" / "05_best_vs_recipe.png")

# %% [markdown]
# ## The chosen configuration on the test set, once
#
# The configuration with the best mean validation accuracy over the fresh seeds is chosen, and only
# its runs are evaluated on the test set.

# %%
chosen = experiments.choose_by_validation(retrained, "configuration")
chosen_config = candidates[chosen]
tested = experiments.test_results([dataclasses.replace(chosen_config, seed=s) for s in range(1, retrain_seeds + 1)], store, data)
test = stats.summarize(tested["test_accuracy"])
complete = trials[trials["state"] == "COMPLETE"]
vs_recipe = ""
if table is not None and chosen in table.index:
    vs_recipe = " " + table.loc[chosen, "sentence"]
conclusion = (
    f"The study ran {len(trials)} trials ({len(complete)} complete, {int((trials['state'] == 'PRUNED').sum())} pruned, "
    f"{int((trials['state'] == 'FAIL').sum())} failed); the best reached {100 * complete['value'].max():.2f}% "
    f"validation accuracy on one seed. Trained again on {retrain_seeds} fresh seeds, the best mean validation accuracy "
    f"is that of {chosen} ({describe_knobs(chosen_config)}): {summary.loc[chosen, 'val accuracy % (mean ± std [95% CI])']}."
    f"{vs_recipe} Evaluated once on {int(tested['test_images'].iloc[0]):,} test images, it scores "
    f"{100 * test.mean:.2f}% mean test accuracy (95% t interval [{100 * test.ci_low:.2f}, {100 * test.ci_high:.2f}]%, "
    f"{test.n} seeds)." if len(complete) else "No trial completed.")
display(Markdown(conclusion))

# %% [markdown]
# ## Provenance and the section in `outputs/results.md`
#
# The report puts this section into `outputs/results.md`.

# %%
runs_line = experiments.provenance_line(retrained.dropna(subset=["val_accuracy"]))
section = experiments.markdown_section(
    "Hyperparameter search with Optuna (notebook 05)",
    [f"Every trial and run: {budget.describe()}. Searched with TPE and successive halving: {describe_space(space)}; "
     f"study `{study_name}`, scored on validation only.", "", "### Trials, best first (validation only)", "",
     markdown_table(shown_trials), "",
     f"### The best {len(best)} trial{'s' if len(best) != 1 else ''} and the recipe, {retrain_seeds} fresh seeds "
     f"(validation)", "",
     markdown_table(summary.drop(columns="mean"))],
    comparisons.format_table(table) if table is not None else summary.drop(columns="mean"),
    list(table["sentence"]) if table is not None else [],
    [conclusion, "", "![search](../figures/05_hyperparameter_search.png)", "",
     "![best vs recipe](../figures/05_best_vs_recipe.png)", "", f"Runs: {runs_line}"])
write_text(out / "experiments" / "05_hyperparameter_search.md", section)
if len(complete):  # the landing page's sentence reads this record
    chosen_validation = stats.summarize(retrained.loc[retrained["configuration"] == chosen, "val_accuracy"].dropna())
    headline_records.write(headline_records.search_record(trials, "fast recipe", chosen, describe_knobs(chosen_config),
                                                          chosen_validation, test, table, EQUIVALENCE_MARGIN,
                                                          [store / r for r in retrained["run"]]), out)
print(runs_line)

# %% [markdown]
# ## Findings
#
# Written from the numbers above; the report shows this cell first.

# %% tags=["findings"]
notebook.show_findings([conclusion, *(list(table["sentence"]) if table is not None else []),
                        f"All at a proxy budget: {budget.describe()}; chosen on validation, the test set read once."])
