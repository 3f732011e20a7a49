"""A pool and a fitted model's weights on disk, for the README's "Pools beyond one machine" walkthrough.

Writes into ``--out``:

* ``pool.npy`` — the pool, float32 (n, 64): scikit-learn's digits training split (embedded, no
  download), or with ``--repeat R`` that pool stacked R times with a little seeded noise (a bigger pool);
* ``labeled.npy`` — the item indices labelled so far (``--labels`` of them, seeded);
* ``mlp.safetensors`` — the weights (a ``state_dict``, no pickle) of ``pickwise.adapters.nets:mlp``
  with ``{"n_features": 64, "n_classes": 10}``, fitted on those labels.

    python scripts/pool_model.py --out big [--labels 100] [--repeat 1] [--seed 0]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="a folder to write pool.npy, labeled.npy and mlp.safetensors into")
    p.add_argument("--labels", type=int, default=100, help="items labelled so far (default: 100)")
    p.add_argument("--repeat", type=int, default=1, help="stack the digits pool this many times (default: 1)")
    p.add_argument("--seed", type=int, default=0, help="seed of the labelled items, the noise and the fit")
    args = p.parse_args(argv)
    if args.repeat < 1:
        p.error(f"--repeat must be >= 1; got {args.repeat}")

    from safetensors.torch import save_file

    from pickwise.adapters import TorchClassifier
    from pickwise.adapters.nets import mlp
    from pickwise.data import load

    ds = load("digits")
    rng = np.random.default_rng(args.seed)
    x = np.concatenate([ds.x_train] * args.repeat).astype(np.float32)
    y = np.concatenate([ds.y_train] * args.repeat)
    if args.repeat > 1:
        x[len(ds.x_train):] += rng.normal(scale=0.05, size=x[len(ds.x_train):].shape).astype(np.float32)
    if not 1 <= args.labels < len(x):
        p.error(f"--labels must be between 1 and {len(x) - 1}; got {args.labels}")
    labeled = np.sort(rng.choice(len(x), args.labels, replace=False))
    clf = TorchClassifier(mlp(x.shape[1], ds.n_classes, seed=args.seed), n_classes=ds.n_classes)
    clf.fit(x[labeled], y[labeled], seed=args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    np.save(out / "pool.npy", x)
    np.save(out / "labeled.npy", labeled)
    save_file({k: v.detach().cpu().contiguous() for k, v in clf.module_.state_dict().items()}, str(out / "mlp.safetensors"))
    print(f"{out}/pool.npy: {x.shape[0]} items × {x.shape[1]}; {args.labels} labelled; mlp.safetensors fitted on them")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
