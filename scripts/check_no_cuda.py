"""Fail loudly if the set-up pulled CUDA packages (several GB) into the environment."""

import sys
from importlib import metadata

cuda = sorted(
    {
        d.metadata["Name"]
        for d in metadata.distributions()
        if d.metadata["Name"]
        and d.metadata["Name"].lower().startswith(("nvidia-", "triton", "cuda-"))
    }
)
if cuda:
    sys.exit(
        "ERROR: CUDA packages were installed: "
        + ", ".join(cuda)
        + "\nInstall the CPU build of torch first (pip install 'torch==2.13.0' from a CPU wheel), "
        "then reinstall pickwise."
    )
try:
    import torch
except ImportError:
    sys.exit(0)
if torch.version.cuda is not None:
    sys.exit(f"ERROR: torch {torch.__version__} is a CUDA build (cuda {torch.version.cuda}); a CPU build is expected.")
print(f"ok: torch {torch.__version__} (CPU build), no CUDA packages")
