#!/usr/bin/env bash
# The peers' own venv for benchmarks/loop.py (issue 16): benchmarks/.venv-peers with torch 2.13.0 (CPU),
# BAAL 2.1.0, small-text 1.4.1 and pickwise itself (editable). Nothing here touches the project's .venv or
# pyproject.toml: the peers are never project dependencies.
#
#     bash benchmarks/peers/setup.sh            # then: benchmarks/.venv-peers/bin/python benchmarks/loop.py
#     PYTHON=python3.11 VENV=/tmp/venv-peers bash benchmarks/peers/setup.sh   # another interpreter / place
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
venv="${VENV:-$repo/benchmarks/.venv-peers}"  # VENV=... to build it elsewhere
python="${PYTHON:-python3}"

"$python" -m venv "$venv"
pip="$venv/bin/pip"
constraint="$(mktemp)"
trap 'rm -f "$constraint"' EXIT
echo "torch==2.13.0" > "$constraint"
# torch first, alone: the CPU wheel 2.13.0 (never let a later step swap in another build)
"$pip" install --quiet "torch==2.13.0"
# the complete pinned lock without the resolver (baal declares jupyter, which nothing here uses)
"$pip" install --quiet --no-deps -c "$constraint" -r "$here/requirements.txt"
# pickwise itself; its dependencies and the "encoders" extra are in the lock
"$pip" install --quiet --no-deps -c "$constraint" -e "$repo"
"$venv/bin/python" - <<'PY'
from importlib.metadata import version
import torch, pickwise
from baal.active import ActiveLearningLoop
from small_text import PoolBasedActiveLearner
from small_text.integrations.pytorch.query_strategies import BADGE
from pickwise.encoders import SentenceEncoder
assert torch.__version__.startswith("2.13.0"), torch.__version__
print(f"peers venv ready: torch {torch.__version__}, baal {version('baal')}, "
      f"small-text {version('small-text')}, pickwise {pickwise.__version__}")
PY
