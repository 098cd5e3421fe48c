"""What the wings agree on, with no heavy imports: how runs end, what is optimised, what checkpoints are
called, and the errors a user can cause and fix (all `UserError`s, one line and exit code 2 in the CLI)."""

from data.errors import UserError

# How a trial, a search or a final training ended: MLflow's `status` tag and the search record say one of these.
COMPLETED = "completed"
STOPPED_EARLY = "stopped early"  # by ASHA
INFEASIBLE = "infeasible"  # out of memory within the budget
FAILED = "failed"
INTERRUPTED = "interrupted"  # killed or Ctrl-C; `--resume` continues it
RUNNING = "running"
# Trials with these statuses have a validation SSIM that counts.
SCORED = (COMPLETED, STOPPED_EARLY)

# What the search maximises: the leaderboard SSIM of the validation set, reported per epoch.
METRIC = "val_ssim"
MODE = "max"
# The MLflow tag that says why a run was infeasible.
INFEASIBLE_TAG = "infeasible_reason"
NODE_TAG = "ray_node"  # the id of the Ray node that trains a trial: a tag of its run
# A key of a trial's reports: the nodes whose training its weights carry, in order, comma-separated.
NODES_KEY = "ray_nodes"
FORGOTTEN_TAG = "not_in_search"  # a run whose trial Ray Tune never recorded (killed at its start)
# Set (to 1) in the one report of a trial that did not fit its memory budget.
INFEASIBLE_FLAG = "infeasible"

# A search's folder holds its record and a copy of its space; trials and finalize log their config as CONFIG_FILE.
RECORD_FILE = "search.json"
SPACE_FILE = "space.yaml"
CONFIG_FILE = "config.yaml"
FINAL_RECORD_FILE = "final.json"
# Beside a search's or finalize's files: MLflow writes waiting for an unreachable tracking server.
OUTBOX_DIR = "mlflow_outbox"
# A trial's checkpoint inside its Ray Tune checkpoint folder; finalize's full state and best weights.
STATE_FILE = "state.pt"
LAST_FILE = "last.pt"
BEST_FILE = "best.pt"
FINAL_DIR = "final"


class SpecError(UserError):
    """The search-space file is malformed; the message names the file and the key."""


class SearchError(UserError):
    """The search cannot start as asked (name taken, nothing to resume, ...)."""


class FinalizeError(UserError):
    """Finalize cannot run as asked; the message says why and what to do."""


class TrackingError(UserError):
    """The tracking URI cannot be used; the message says what was expected."""
