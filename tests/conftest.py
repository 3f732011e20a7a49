import os
import sys
from pathlib import Path

# tests import the shared contract and fakes as plain modules
sys.path.insert(0, str(Path(__file__).resolve().parent))

# datasets come from ../shared/data unless the caller points elsewhere; nothing downloads in tests
_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "PICKWISE_DATA" not in os.environ and _SHARED.is_dir():
    os.environ["PICKWISE_DATA"] = str(_SHARED)
