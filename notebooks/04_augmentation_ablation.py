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
# # 04 · What each piece of the fast recipe buys
#
# The fast recipe (notebook 02's `fast`: the whitened fast net, Muon, label smoothing, alternating flips
# with small translations, test-time augmentation) is a bundle of choices. Which of them matter, by how
# much, and how sure can we be? Each **arm** below is the full recipe with one piece changed: the
# augmentation replaced by another setting, or one other component left out. Every arm is compared
# with the full recipe on the same seeds.
#
# How the comparison is made, so that it can answer its question:
#
# - **Validation, not test.** Every run holds out a validation split and the comparisons are made on
#   it. The test set is read once, at the end, for the full recipe alone.
# - **Paired seeds.** Seed *k* gives the same initialisation and data order in every arm, so each
#   comparison is a paired t-test on the per-seed differences (Welch's test beside it as a check),
#   with Holm's correction across the table and a 95% interval for each difference.
# - **Power stated before the runs.** A pilot (the full recipe on the first seeds) measures the
#   seed-to-seed spread; from it the notebook picks the number of seeds whose minimal detectable effect
#   (80% power, α = 0.05) reaches the target, within a budget, and says so when the budget cannot.
# - **"No effect" only with evidence.** An arm is called equivalent to the full recipe only when its
#   whole interval lies inside the equivalence margin (TOST); otherwise a non-significant row is
#   "not resolvable at this budget".
# - **A schedule that decays to zero** (the recipe's own), which keeps end-of-run noise low.
#
# Every run is saved under `RUNS_DIR` (default `outputs/experiments/runs/<digest>/`), named by a digest
# of its configuration. Its records (config, history, metrics) are committed, so a rerun, or a fresh
# clone, rebuilds every table and figure without training; `RERUN=True` trains them again.


# %%
# %matplotlib inline

import pandas as pd
from IPython.display import Markdown, display

from cifar_utils import notebook, paths
from cifar_utils.analysis import ablation, comparisons, experiments, figures, headline_records, stats
from cifar_utils.analysis.tables import markdown_table
from cifar_utils.core.data import load_cifar10
from cifar_utils.runs.atomic import save_figure, write_text

# %% tags=["parameters"]
SMOKE = notebook.smoke_default()  # tiny widths, one epoch on 1000 images, 2 arms (on when $CIFAR_SMOKE is 1, or $CI is set)
ARMS = None  # the arms compared with the full recipe, names from ablation.ARMS (None: all; 2 in smoke mode)
N_SEEDS = "auto"  # seeds per arm: "auto" picks n from the pilot so that TARGET_EFFECT is detectable; or a number
MAX_SEEDS = None  # the most seeds "auto" may pick (None: 20; 3 in smoke mode)
PILOT_SEEDS = None  # seeds of the full recipe that measure the spread first (None: 3; 2 in smoke mode)
TARGET_EFFECT = 0.01  # the difference "auto" must detect at 80% power, as a fraction (0.01: one point)
EQUIVALENCE_MARGIN = 0.01  # TOST margin: an interval inside plus or minus this is "equivalent" (a fraction)
EXPERIMENT_EPOCHS = None  # epochs of every run (None: 2; the recipe's own is 8; 1 in smoke mode)
EXPERIMENT_WIDTHS = None  # the fast net's three widths (None: [32, 64, 64]; the recipe's are [64, 256, 256]; [8, 16, 16] in smoke mode)
EXPERIMENT_SUBSET = None  # training images (None: all 45,000; 1000 in smoke mode)
EXPERIMENT_VAL_SIZE = None  # validation images held out (None: 5000; a subset keeps a fifth of its size)
EXPERIMENT_BATCH_SIZE = None  # training batch size (None: 500; the recipe's is 2000; 100 in smoke mode)
DEVICE = None  # "auto", "cpu" or "cuda" (None: auto)
PRECISION = None  # "auto", "fp32", "bf16" (None: auto; part of each run's digest)
RERUN = False  # train every run again even when its records are there
# Plumbing: where data and files are (the report sets these; by hand the defaults are right)
DATA_ROOT = None  # folder holding cifar-10-batches-py/ (None: $CIFAR10_ROOT, else <project>/data)
VERIFY_DATA = True  # check the files' md5 sums (the report checks once and passes False)
OUTPUT_DIR = None  # figures and the results section go here (None: $CIFAR_OUTPUTS, else <project>/scratch; only the report writes outputs/)
RUNS_DIR = None  # run records (None: OUTPUT_DIR/experiments/runs)

# %%
budget = experiments.budget(SMOKE, EXPERIMENT_EPOCHS, EXPERIMENT_WIDTHS, EXPERIMENT_SUBSET, EXPERIMENT_VAL_SIZE, DEVICE, PRECISION,
                  EXPERIMENT_BATCH_SIZE)
arms = ablation.check_arms(ARMS or (ablation.SMOKE_ARMS if SMOKE else ablation.ARMS))
n_seeds, max_seeds, pilot_seeds = ablation.seed_settings(SMOKE, N_SEEDS, MAX_SEEDS, PILOT_SEEDS)
out = paths.notebook_outputs_dir(OUTPUT_DIR)
store = experiments.runs_store(out, RUNS_DIR)
data = load_cifar10(paths.data_root(DATA_ROOT), download=not SMOKE, verify=VERIFY_DATA)
if SMOKE:
    data = notebook.smoke_dataset(data)
display(Markdown(f"Every run: {budget.describe()}."))
pd.DataFrame({"changes in the full recipe": [ablation.describe_arm(a) for a in arms]}, index=pd.Index(arms, name="arm"))

# %% [markdown]
# ## The pilot: how much do seeds alone move the full recipe?
#
# The full recipe on the first seeds. Their spread decides how many seeds the comparison needs.

# %%
pilot = experiments.train_runs([ablation.arm_config(budget, ablation.FULL, s) for s in range(1, pilot_seeds + 1)], store, data,
                     rerun=RERUN, labels=[{"arm": ablation.FULL}] * pilot_seeds)
plan = ablation.plan_seeds(pilot["val_accuracy"], n_seeds, max_seeds, TARGET_EFFECT)
display(Markdown("\n\n".join(plan.sentences())))

# %% [markdown]
# ## Every arm on the same seeds
#
# One line per run: the arm, its seed, validation accuracy and wall time. The pilot's runs are
# the full recipe's first seeds, reused here.

# %%
seeds = range(1, plan.n + 1)
configs, labels = ablation.runs_to_train(budget, arms, seeds)
frame = experiments.train_runs(configs, store, data, rerun=RERUN, labels=labels, done=pilot)
values = ablation.arm_accuracies(frame, arms)

# %% [markdown]
# ## What each piece buys
#
# Each row: the arm's mean validation accuracy, its difference Δ from the full recipe (points) with
# the 95% interval of the paired differences, the paired and Welch p-values, the Holm-corrected p
# across the table, the effect its seeds could detect at 80% power, and the equivalence test.

# %%
table = comparisons.compare_arms(values, "arm", ablation.FULL, value="val_accuracy", delta=EQUIVALENCE_MARGIN,
                       what="validation accuracy")
shown = comparisons.format_table(table)
display(shown)
display(Markdown("\n".join(f"- {s}" for s in table["sentence"])))
display(Markdown(comparisons.findings(table, ablation.FULL, EQUIVALENCE_MARGIN, what="validation accuracy")))

# %%
fig = figures.plot_forest(table, ablation.FULL, margin=EQUIVALENCE_MARGIN, what="validation accuracy",
                        title="What each piece of the fast recipe buys (validation, paired by seed)")
save_figure(fig, out / "figures" / "04_augmentation_ablation.png")

# %% [markdown]
# ### Every seed
#
# Validation accuracy (%) of each run, one column per seed: the values the differences come from.

# %%
(100 * values.pivot(index="arm", columns="seed", values="val_accuracy").loc[[ablation.FULL, *arms]]).round(2)

# %% [markdown]
# ## The confirmatory round: fresh seeds, planned at Holm's level
#
# The table above is exploratory: its seeds were planned from a 3-seed pilot at α = 0.05, while its
# verdicts are Holm-corrected across every row. The confirmatory round runs every arm again on fresh
# seeds (`ablation.CONFIRM_SEEDS`), planned from the pooled spread of all the exploratory runs at
# Holm's first step. It is analysed once all its records are present; `python -m cifar_utils ablation
# confirm` trains them (the report never does).

# %%
round_plan = ablation.plan_round(frame, rows=len(arms))
display(Markdown(round_plan.sentence()))
confirm_configs, confirm_labels = ablation.runs_to_train(budget, arms, ablation.CONFIRM_SEEDS)
missing = ablation.missing_records(confirm_configs, store)
confirm_table = sweep_said = None
if missing:
    display(Markdown(f"The confirmatory round is not in the records yet ({len(missing)} of {len(confirm_configs)} "
                     f"runs missing): the verdicts below stay exploratory."))
else:
    confirm_frame = experiments.train_runs(confirm_configs, store, data, labels=confirm_labels)  # records: reused
    confirm_arms = list(arms)
    # The SGD arm's own sweep (lr and weight decay x0.5, x1, x2 on seeds of its own), and its best setting on the
    # confirmatory seeds as one more row: tuned SGD against tuned Muon. Read when its records are complete.
    sweep_configs, sweep_labels = ablation.round_configs("sgd-sweep", budget)
    if ablation.SGD_ARM in arms and not ablation.missing_records(sweep_configs, store):
        sweep = experiments.train_runs(sweep_configs, store, data, labels=sweep_labels)
        display(Markdown("The SGD arm's sweep (mean validation accuracy %, lr factor × weight-decay factor, "
                         f"seeds {', '.join(map(str, ablation.SWEEP_SEEDS))}):"))
        display((100 * sweep.pivot_table(index="lr_factor", columns="wd_factor", values="val_accuracy")).round(2))
        sweep_said = ablation.sweep_sentence(sweep)
        display(Markdown(sweep_said))
        tuned_configs, tuned_labels = ablation.round_configs("sgd-tuned", budget, sweep)
        if not ablation.missing_records(tuned_configs, store):
            confirm_frame = pd.concat([confirm_frame, experiments.train_runs(tuned_configs, store, data,
                                                                             labels=tuned_labels)], ignore_index=True)
            confirm_arms.append(ablation.SGD_TUNED)
    confirm_table = comparisons.compare_arms(ablation.arm_accuracies(confirm_frame, confirm_arms), "arm", ablation.FULL,
                                             value="val_accuracy", delta=EQUIVALENCE_MARGIN,
                                             what="validation accuracy")
    display(comparisons.format_table(confirm_table))
    display(Markdown(comparisons.findings(confirm_table, ablation.FULL, EQUIVALENCE_MARGIN, what="validation accuracy")))
    first, last = ablation.CONFIRM_SEEDS[0], ablation.CONFIRM_SEEDS[-1]
    verdicts = pd.DataFrame({"exploratory (seeds 1 to %d)" % plan.n: table.apply(ablation.verdict_word, axis=1),
                             "confirmatory (seeds %d to %d)" % (first, last): confirm_table.apply(ablation.verdict_word, axis=1)})
    verdicts = verdicts.fillna("not in that round")
    display(verdicts)

# %% [markdown]
# ## A longer budget: which effects hold as training grows
#
# Every row above is about the 2-epoch proxy. The arms it resolved run again at 8 epochs, the shipped recipe's
# count, at the same proxy widths (`ablation.LONG_ARMS`, seeds `ablation.LONG_SEEDS`; a run costs four proxy runs, so
# three seeds). Analysed once all its records are present; `python -m cifar_utils ablation long` trains them (the
# report never does). Three seeds detect only large effects at Holm's level: the table's detectable column says how
# large.

# %%
long_configs, long_labels = ablation.round_configs("long", budget)
long_missing = ablation.missing_records(long_configs, store)
long_table = long_sentence = None
long_budget = ablation.long_budget(budget)
if SMOKE or long_missing:
    display(Markdown(f"The longer round is not in the records ({len(long_missing)} of {len(long_configs)} runs missing)."
                     if not SMOKE else "Smoke mode: the longer round is not read."))
else:
    long_frame = experiments.train_runs(long_configs, store, data, labels=long_labels)  # records: reused
    long_arms = list(ablation.LONG_ARMS)
    long_table = comparisons.compare_arms(ablation.arm_accuracies(long_frame, long_arms), "arm", ablation.FULL,
                                          value="val_accuracy", delta=EQUIVALENCE_MARGIN, what="validation accuracy")
    display(comparisons.format_table(long_table))
    proxy_table = confirm_table if confirm_table is not None else table
    proxy_name = f"{budget.epochs} epochs ({'confirmatory' if confirm_table is not None else 'exploratory'} round)"
    budgets_side = ablation.across_budgets(proxy_table, long_table, proxy_name, f"{ablation.LONG_EPOCHS} epochs")
    display(budgets_side)
    reach = long_table["detectable"].dropna()
    long_sentence = (f"The longer round ({ablation.LONG_EPOCHS} epochs, {len(ablation.LONG_SEEDS)} paired seeds, Holm over "
                     f"{len(long_table)} rows; its seeds detect {reach.min():.2f} to {reach.max():.2f} points at 80% power) "
                     f"beside {proxy_name}. " + ablation.held_as_training_grows(proxy_table, long_table))
    display(Markdown(long_sentence))

# %% [markdown]
# ## The full recipe on the test set, once
#
# Nothing above looked at the test set. Now the full recipe's runs are evaluated on it, once each
# (the result is kept in each run's records, so a rerun reads it instead of evaluating again).

# %%
tested = experiments.test_results([ablation.arm_config(budget, ablation.FULL, s) for s in seeds], store, data)
test_summary = stats.summarize(tested["test_accuracy"])
test_sentence = (f"The full recipe at this budget scores {100 * test_summary.mean:.2f}% test accuracy over "
                 f"{test_summary.n} seeds (95% t interval [{100 * test_summary.ci_low:.2f}, "
                 f"{100 * test_summary.ci_high:.2f}]%, SD {100 * test_summary.std:.2f} points) on "
                 f"{int(tested['test_images'].iloc[0]):,} test images.")
display(Markdown(test_sentence))

# %% [markdown]
# ## Provenance and the section in `outputs/results.md`
#
# The report puts this section into `outputs/results.md`.

# %%
provenance = experiments.provenance_line(pd.concat([pilot, frame]).drop_duplicates("run"))
section = experiments.markdown_section(
    "What each piece of the fast recipe buys (notebook 04)",
    [f"Every run: {budget.describe()}. Each arm is the full recipe with one piece changed, on the same seeds; "
     f"differences in validation accuracy, paired by seed, with 95% intervals, Holm-corrected p-values, the effect "
     f"each row's seeds detect at 80% power, and TOST at ±{100 * EQUIVALENCE_MARGIN:g} point"
     f"{'' if EQUIVALENCE_MARGIN == 0.01 else 's'}.",
     "", *plan.sentences()],
    shown, list(table["sentence"]),
    [comparisons.findings(table, ablation.FULL, EQUIVALENCE_MARGIN, what="validation accuracy"), "",
     "### The confirmatory round (fresh seeds, planned at Holm's level)", "", round_plan.sentence(), "",
     *([markdown_table(comparisons.format_table(confirm_table)), "",
        comparisons.findings(confirm_table, ablation.FULL, EQUIVALENCE_MARGIN, what="validation accuracy"), "",
        *([sweep_said, ""] if sweep_said else []),
        "Verdicts of the two rounds side by side:", "", markdown_table(verdicts), ""]
       if confirm_table is not None else ["Its records are not complete yet; the verdicts above are exploratory.", ""]),
     *(["### A longer budget: 8 epochs at the proxy widths", "", f"Every run: {long_budget.describe()}.", "",
        markdown_table(comparisons.format_table(long_table)), "", markdown_table(budgets_side), "", long_sentence, ""]
       if long_table is not None else []),
     test_sentence, "",
     "![what each piece buys](../figures/04_augmentation_ablation.png)", "", f"Runs: {provenance}"])
write_text(out / "experiments" / "04_augmentation_ablation.md", section)
# The landing page's sentence reads this record (the confirmatory verdicts when that round is complete).
verdict_runs = confirm_frame if confirm_table is not None else frame
headline_records.write(headline_records.ablation_record(confirm_table if confirm_table is not None else table,
                                                        ablation.FULL, budget.describe(), EQUIVALENCE_MARGIN,
                                                        test_summary, [store / r for r in verdict_runs["run"]]), out)
print(provenance)

# %% [markdown]
# ## Findings
#
# Written from the numbers above; the report shows this cell first.

# %% tags=["findings"]
final = confirm_table if confirm_table is not None else table
which = "confirmatory round" if confirm_table is not None else "exploratory round (the confirmatory one is not in the records)"
notebook.show_findings([
    f"From the {which}: " + comparisons.findings(final, ablation.FULL, EQUIVALENCE_MARGIN, what="validation accuracy"),
    *(["Verdicts that changed from the exploratory round: "
       + (", ".join(f"{arm} ({old} → {new})" for arm, (old, new) in verdicts.iterrows()
                    if old.split()[0] != new.split()[0] and "round" not in old)
          or "none") + "."] if confirm_table is not None else []),
    *([sweep_said] if sweep_said else []),
    *([long_sentence] if long_sentence else []),
    test_sentence,
    f"Every number here is about a proxy budget ({budget.describe()}), chosen so that many seeds fit on a CPU"
    + (f", and a longer one at {ablation.LONG_EPOCHS} epochs for the arms above" if long_sentence else "")
    + "; the shipped fast recipe trains 8 epochs at widths 64, 256, 256, where the effects may differ.",
])
