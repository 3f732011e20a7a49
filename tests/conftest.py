import os
import sys
from pathlib import Path

# tests import the shared contract and fakes as plain modules
sys.path.insert(0, str(Path(__file__).resolve().parent))

# datasets come from ../shared/data unless the caller points elsewhere; nothing downloads in tests
_SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
if "PICKWISE_DATA" not in os.environ and _SHARED.is_dir():
    os.environ["PICKWISE_DATA"] = str(_SHARED)

# Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER once, when it is first imported; "0" binds every listener to
# 127.0.0.1. Set for the whole session, so whichever test module of a worker process imports ray first, it
# imports it bound to loopback (the Ray fixtures check this and restore only what they set themselves).
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# one throwaway token for every Ray instance a test process starts (Ray keeps the first one it reads)
os.environ.setdefault("RAY_AUTH_TOKEN", __import__("secrets").token_hex(32))
