"""Fuzzing `pickwise select`, `run` and `stream` through :func:`pickwise.cli.main` with bad arrays in
.npy files and bad option values (issue 12): every bad input exits 2 with one line on stderr naming
the offending value, never a traceback; exit 0 only for valid inputs, and then with the right answer
(select's picks equal the strategy's own on the same arrays)."""

from __future__ import annotations

import contextlib
import csv
import io
import tempfile
import traceback
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pickwise.catalog import make_strategy
from pickwise.cli import main
from pickwise.pool import Pool
from pickwise.precomputed import Precomputed

#: each case below is its own test (so every case runs), with a few examples of its values
FUZZ = settings(max_examples=4, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _call(argv: list[str]) -> tuple[int, str, str]:
    """``main(argv)`` with stdout and stderr captured; anything escaping it fails the test."""
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            rc = main(argv)
    except BaseException as e:  # noqa: BLE001 - a traceback (or SystemExit) is what this test forbids
        pytest.fail(f"main({argv}) raised {type(e).__name__}: {e}\n{traceback.format_exc()}")
    return rc, out.getvalue(), err.getvalue()


def _refused(argv: list[str], *named: str) -> str:
    rc, _, err = _call(argv)
    cmd = argv[0]
    assert rc == 2, f"exit {rc} for {argv}; stderr: {err!r}"
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(f"pickwise {cmd}: note:")]
    assert len(lines) == 1 and lines[0].startswith(f"pickwise {cmd}: error: "), err
    for text in named:
        assert text in lines[0], f"{text!r} not named in {lines[0]!r}"
    return lines[0]


# -- select ------------------------------------------------------------------------------------------

SELECT_CASES = ("valid", "ndim", "nonfinite", "negative", "sum", "n_mismatch", "empty", "dtype", "mc_swapped",
                "members_swapped", "garbage", "bad_k", "bad_draws", "bad_seed", "labeled_out_of_range")


#: the arrays each strategy reads
NEEDS = {"margin": ["probs"], "entropy": ["probs"], "least_confidence": ["probs"], "random": ["probs"],
         "bald": ["mc_probs"], "batchbald": ["mc_probs"], "variation_ratio": ["mc_probs"],
         "badge": ["probs", "embeddings"], "coreset": ["embeddings"], "dbal": ["probs", "embeddings"],
         "qbc": ["member_probs"], "qbc_kl": ["member_probs"]}


def _outputs(rng: np.random.Generator, n: int, k: int, t: int, m: int) -> dict[str, np.ndarray]:
    return {
        "probs": rng.dirichlet(np.ones(k), size=n),
        "embeddings": rng.normal(size=(n, 3)),
        "mc_probs": rng.dirichlet(np.ones(k), size=(t, n)),
        "member_probs": rng.dirichlet(np.ones(k), size=(m, n)),
    }


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


@pytest.mark.parametrize("case", SELECT_CASES)
@FUZZ
@given(seed=st.integers(0, 2**16), data=st.data())
def test_fuzz_select(case, seed, data):
    rng = np.random.default_rng(seed)
    n, k_cls = data.draw(st.integers(3, 12), "n"), data.draw(st.integers(2, 4), "K")
    # fewer draws and members than items: more would be taken for the swapped layout (N, T, K)
    t = data.draw(st.integers(2, min(5, n - 1)), "T")
    m = data.draw(st.integers(2, min(4, n - 1)), "M")
    arrays = _outputs(rng, n, k_cls, t, m)
    strategy = data.draw(st.sampled_from(["margin", "entropy", "bald", "badge", "coreset", "qbc", "qbc_kl", "random"]))
    k = data.draw(st.integers(1, n), "k")
    extra: list[str] = []
    named: tuple[str, ...] = ()
    i = data.draw(st.integers(0, n - 1), "row")
    if case == "ndim":
        arrays["probs"] = data.draw(st.sampled_from([arrays["probs"][:, 0], arrays["probs"][:, :, None],
                                                     arrays["probs"][None]]))
        strategy, named = "margin", (str(arrays["probs"].shape),)
    elif case == "nonfinite":
        bad = data.draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        arrays["probs"][i, data.draw(st.integers(0, k_cls - 1))] = bad
        strategy, named = "margin", (str(bad), f"item {i}")
    elif case == "negative":
        v = data.draw(st.floats(0.01, 5.0))
        arrays["probs"][i] = 0.0
        arrays["probs"][i, :2] = [1 + v, -v]  # sums to 1, but not probabilities
        strategy, named = data.draw(st.sampled_from(["margin", "badge", "entropy"])), (f"item {i}",)
    elif case == "sum":
        arrays["probs"][i] *= data.draw(st.sampled_from([0.0, 0.3, 0.9, 1.1, 2.5]))
        strategy, named = data.draw(st.sampled_from(["margin", "badge", "least_confidence"])), (f"item {i}",)
    elif case == "n_mismatch":
        d = data.draw(st.integers(-n + 1, 5).filter(lambda v: v != 0))
        other = data.draw(st.sampled_from(["embeddings", "mc_probs", "member_probs"]))
        a = _outputs(rng, n + d, k_cls, t, m)[other]
        arrays[other] = a
        strategy = {"embeddings": "badge", "mc_probs": "bald", "member_probs": "qbc"}[other]
        named = (str(n), str(n + d)) if other == "embeddings" else (str(tuple(a.shape)), str(n))
    elif case == "empty":
        arrays["probs"] = arrays["probs"][:0]
        strategy, named = "margin", ("empty", str((0, k_cls)))
    elif case == "dtype":
        arrays["probs"] = data.draw(st.sampled_from([arrays["probs"].astype(complex), arrays["probs"].astype(str),
                                                     arrays["probs"] > 0.5]))
        strategy, named = "margin", ("dtype", str(arrays["probs"].dtype))
    elif case == "mc_swapped":
        arrays["mc_probs"] = arrays["mc_probs"].transpose(1, 0, 2)
        strategy, named = data.draw(st.sampled_from(["bald", "batchbald", "variation_ratio"])), (
            str(arrays["mc_probs"].shape), "(T, N, K)")
    elif case == "members_swapped":
        arrays["member_probs"] = arrays["member_probs"].transpose(1, 0, 2)
        strategy, named = "qbc", (str(arrays["member_probs"].shape), "(M, N, K)")
    elif case == "bad_k":
        k = data.draw(st.sampled_from([0, -1, -50, n + 1, n + 1000]))
        named = ("--k", str(k))
    elif case == "bad_draws":
        nd = data.draw(st.sampled_from([0, -3, t + 1]))
        strategy, extra, named = "bald", ["--n-draws", str(nd)], ("--n-draws", str(nd))
    elif case == "bad_seed":
        s = data.draw(st.integers(-1000, -1))
        extra, named = ["--seed", str(s)], ("--seed", str(s))
    elif case == "labeled_out_of_range":
        bad = data.draw(st.sampled_from([-1, n, n + 7]))
        extra, named = ["--labeled", "LABELED"], ("--labeled", str(bad))
    needs = NEEDS[strategy] if case != "valid" else list(arrays)
    if case == "n_mismatch":
        needs = ["probs", *[x for x in needs if x != "probs"]]
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        argv = ["select", "--strategy", strategy, "--k", str(k), "--out", str(d / "picks.csv"), "--no-progress"]
        for name in needs:
            np.save(d / f"{name}.npy", arrays[name])
            argv += [_flag(name), str(d / f"{name}.npy")]
        if case == "garbage":
            (d / "probs.npy").write_bytes(rng.bytes(int(rng.integers(0, 200))))
            argv += ["--probs", str(d / "probs.npy")]
            named = ("not a .npy file", str(d / "probs.npy"))
        if case == "labeled_out_of_range":
            np.save(d / "labeled.npy", np.array([0, bad]))
            extra = ["--labeled", str(d / "labeled.npy")]
        argv += extra
        if case != "valid":
            _refused(argv, *named)
            assert not (d / "picks.csv").exists()
            return
        # valid arrays: every strategy answers, with the picks of the strategy itself on the same arrays
        for strategy, needs in NEEDS.items():
            argv = ["select", "--strategy", strategy, "--k", str(k), "--out", str(d / "picks.csv"), "--no-progress"]
            for name in needs:
                argv += [_flag(name), str(d / f"{name}.npy")]
            rc, _, err = _call(argv)
            assert rc == 0, err
            with open(d / "picks.csv") as f:
                picks = [int(r["index"]) for r in csv.DictReader(f)]
            model = Precomputed(**{name: arrays[name] for name in needs})
            want = make_strategy(strategy, n_draws=t).select(model, model.x, Pool.empty(n), k,
                                                             rng=np.random.default_rng(0))
            assert picks == np.asarray(want).tolist(), strategy


# -- run and stream on digits ----------------------------------------------------------------------

TINY_RUN = ["--dataset", "digits", "--max-train", "60", "--hidden", "8", "--epochs", "1", "--no-progress"]

_INT_BELOW_1 = st.integers(-10**6, 0)
_NONFINITE = st.sampled_from([float("nan"), float("inf"), float("-inf")])

#: (flag, bad values, commands): every value must be refused, naming the flag and the value
#: (the pools of TINY_RUN: 60 items, 10 initial labels, so 50 unlabelled)
BAD_OPTIONS = [
    ("--max-train", _INT_BELOW_1, ("run", "stream")),
    ("--initial", st.integers(-10**6, -1), ("run",)),  # run may start from no labels (--initial 0)
    ("--initial", _INT_BELOW_1, ("stream",)),
    ("--initial", st.integers(61, 10**6), ("run",)),
    ("--initial", st.integers(60, 10**6), ("stream",)),
    ("--k", _INT_BELOW_1 | st.integers(51, 10**7), ("run",)),
    ("--rounds", st.integers(-10**6, -1), ("run",)),
    ("--epochs", _INT_BELOW_1, ("run", "stream")),
    ("--hidden", _INT_BELOW_1, ("run", "stream")),
    ("--n-draws", _INT_BELOW_1, ("run",)),
    ("--committee", st.integers(-10**6, 1), ("run",)),
    ("--seed", st.integers(-10**6, -1), ("run", "stream")),
    ("--split-seed", st.integers(-10**6, -1), ("run", "stream")),
    ("--image-size", _INT_BELOW_1, ("run",)),
    ("--lr", st.floats(max_value=0.0, allow_nan=False) | _NONFINITE, ("run", "stream")),
    ("--dropout", st.floats(min_value=1.0, allow_nan=False) | st.floats(max_value=-1e-9, allow_nan=False)
     | _NONFINITE, ("run", "stream")),
    ("--test-size", st.floats(min_value=1.0, allow_nan=False) | st.floats(max_value=0.0, allow_nan=False)
     | _NONFINITE, ("run", "stream")),
    ("--subsample-alpha", st.floats(max_value=0.0, allow_nan=False) | _NONFINITE, ("run",)),
    ("--budget", _INT_BELOW_1 | st.integers(51, 10**7), ("stream",)),
    ("--segment", _INT_BELOW_1, ("stream",)),
    ("--threads", _INT_BELOW_1, ("run", "stream")),
    ("--q", st.floats(min_value=1.0, exclude_min=True, allow_nan=False) | st.floats(max_value=0.0, allow_nan=False)
     | _NONFINITE, ("stream",)),
]
_CASES = [(flag, values, cmd) for flag, values, cmds in BAD_OPTIONS for cmd in cmds]


def _base(cmd: str, out: Path) -> list[str]:
    if cmd == "run":
        return ["run", *TINY_RUN, "--initial", "10", "--k", "5", "--rounds", "1", "--out", str(out)]
    return ["stream", *TINY_RUN, "--initial", "10", "--segment", "25", "--out", str(out)]


@pytest.mark.parametrize("flag, values, cmd", _CASES, ids=[f"{c}{f}" for f, _, c in _CASES])
@FUZZ
@given(data=st.data())
def test_fuzz_bad_option_values(flag, values, cmd, data):
    value = data.draw(values, flag)
    with tempfile.TemporaryDirectory() as tmp:
        argv = _base(cmd, Path(tmp))
        if cmd == "stream" and flag not in ("--budget", "--q"):
            argv += ["--budget", "10"]
        # the last occurrence of an option wins: the bad value overrides the base's
        _refused([*argv, f"{flag}={value}"], flag, str(value))
        assert not list(Path(tmp).glob("*.jsonl"))


def test_fuzz_options_cover_every_numeric_option():
    """Every numeric option of run and stream has bad values above (or is exercised elsewhere)."""
    from pickwise.cli import build_parser

    parser = build_parser()
    covered = {flag for flag, _, _ in BAD_OPTIONS}
    for cmd in ("run", "stream"):
        sub = parser._subparsers._group_actions[0].choices[cmd]
        numeric = {a.option_strings[0] for a in sub._actions if a.type in (int, float) and a.help != "==SUPPRESS=="}
        # the training variants' weights: tests/test_cli_validation.py::test_meaningless_numbers_are_refused
        missing = numeric - covered - {"--entropy-weight", "--ceal-delta0", "--ceal-decay", "--subsample-tau"}
        assert not missing, f"{cmd}: no bad values for {sorted(missing)}"


DATA_CASES = ("valid", "nan", "inf", "n_mismatch", "labels_2d", "features_1d", "empty", "complex", "strings")


@pytest.mark.parametrize("cmd", ["run", "stream"])
@pytest.mark.parametrize("case", DATA_CASES)
@settings(FUZZ, max_examples=2)
@given(seed=st.integers(0, 2**16), data=st.data())
def test_fuzz_data_files(case, cmd, seed, data):
    rng = np.random.default_rng(seed)
    n = data.draw(st.integers(40, 60), "n")
    x = rng.normal(size=(n, 4))
    y = np.arange(n) % 3
    named: tuple[str, ...] = ()
    if case in ("nan", "inf"):
        x[data.draw(st.integers(0, n - 1)), data.draw(st.integers(0, 3))] = np.nan if case == "nan" else -np.inf
        named = ("nan" if case == "nan" else "inf",)
    elif case == "n_mismatch":
        y = y[: data.draw(st.integers(1, n - 1))]
        named = (str(n), str(len(y)))
    elif case == "labels_2d":
        y = y[:, None]
        named = (str(y.shape),)
    elif case == "features_1d":
        x = x[:, 0]
        named = ("shape",)
    elif case == "empty":
        x, y = x[:0], y[:0]
    elif case == "complex":
        x = x.astype(complex)
        named = ("complex",)
    elif case == "strings":
        x = x.astype(str)
        named = ("dtype",)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        np.save(d / "x.npy", x)
        np.save(d / "y.npy", y)
        data_args = ["--data", str(d / "x.npy"), "--labels", str(d / "y.npy"), "--hidden", "8", "--epochs", "1",
                     "--initial", "6", "--out", str(d / "runs"), "--no-progress"]
        argv = [cmd, *data_args, *(["--k", "4", "--rounds", "1"] if cmd == "run" else ["--budget", "5", "--segment", "20"])]
        if case != "valid":
            _refused(argv, *named)
            return
        rc, _, err = _call(argv)
        assert rc == 0, err
        assert len(list((d / "runs").glob("*.jsonl"))) == 1
