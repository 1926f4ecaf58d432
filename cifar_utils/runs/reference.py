"""The fast model every full report analyses beside the seed baseline, kept in the repository.

The fast recipe trains for 13 minutes or more on a 2-core CPU: longer than the rest of the report
together. So its finished run folder is committed under `outputs/runs/` (config, history, metrics,
curves and the final weights, without the optimizer's state), and a fresh clone's report evaluates
it in notebooks 03 and 06 instead of training it, the way notebooks 04, 05 and 07 reuse their
committed run records. `--retrain` (alias `--rerun`) trains it again. Whether it is reused is
reuse.decide_reference_run's: a machine where precision "auto" resolves otherwise (fp32 on an AVX2-only
CPU, say) reuses the committed run made in bf16, and says so.
"""

from __future__ import annotations

from pathlib import Path

from ..core.config import TrainConfig, training_config
from . import run_files
from .reuse import decide_reference_run
from .training import carry_out

# run folder name -> (recipe, overrides). A 5,000-image validation split: notebook 06 fits the
# temperature on it, and the analyses in 03 need held-out images the test set never decides.
REFERENCE_RUNS = {"fast-val5k-seed0": ("fast", {"val_size": 5000, "seed": 0})}


def reference_config(name: str) -> TrainConfig:
    recipe, overrides = REFERENCE_RUNS[name]
    return training_config(recipe, **overrides)


def ensure_reference_runs(runs_dir: str | Path, *, data_root, reuse: bool = True, skip=(), log=print) -> list[Path]:
    """Every reference run (but those named in `skip`) finished in `runs_dir`: reused when it holds exactly this
    configuration (at any precision: see reuse.decide_reference_run) and `reuse`, otherwise trained now, replacing
    the run of an older definition. Returns their folders."""
    folders = []
    for name in (n for n in REFERENCE_RUNS if n not in skip):
        run_dir = Path(runs_dir) / name
        decision = decide_reference_run(reference_config(name), run_dir, reuse=reuse, log=log)
        record = carry_out(decision, data_root=data_root, verify_data=False, progress=False, log=log)
        if not record.reused:
            run_files.drop_training_state(run_dir)  # what gets committed: the weights, not the optimizer's state
        folders.append(run_dir)
    return folders
