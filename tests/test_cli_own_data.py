"""Your own data end to end: load_file for every format, `pickwise run --data`, `pickwise select`
with ids and exclusions, natural values of BADGE and core-set, and `pickwise stream` refusals."""

import csv
import json

import numpy as np
import pytest
from fakes import FakeModel, blobs

from pickwise.cli import main
from pickwise.data import data_root, image_folder_files, load, load_file, stratified_split
from pickwise.pool import Pool
from pickwise.precomputed import Precomputed, natural_values, read_ids, resolve_refs
from pickwise.strategies import BADGE, CoreSet

ANIMALS = np.array(["zebra", "cat", "dog"])


def _table(n=90, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3)).round(4)
    y = ANIMALS[np.arange(n) % 3]
    return x, y


def _write_csv(path, header, rows):
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def numeric_csv(tmp_path):
    x, y = _table()
    return _write_csv(tmp_path / "animals.csv", ["a", "b", "c", "kind"], [[*r, k] for r, k in zip(x, y)]), x, y


def test_csv_with_string_labels_sorted_classes_and_a_stratified_split(numeric_csv):
    path, x, y = numeric_csv
    ds = load_file(path, label_column="kind", test_size=0.2, seed=3)
    assert ds.class_names == ("cat", "dog", "zebra")  # sorted, not first-seen (zebra came first)
    assert ds.feature_names == ("a", "b", "c") and ds.x_train.dtype == np.float32
    codes = np.searchsorted(np.array(ds.class_names), y)
    tr, te = stratified_split(codes, test_size=0.2, seed=3)
    np.testing.assert_array_equal(ds.x_train, x[tr].astype(np.float32))
    np.testing.assert_array_equal(ds.y_test, codes[te])
    assert len(ds.y_test) == 18 and np.bincount(ds.y_test).tolist() == [6, 6, 6]
    # load() takes a path too; --label-column default is 'label', else the last column
    assert load(str(path)).class_names == ds.class_names


def test_numeric_labels_sort_numerically(tmp_path):
    rows = [[float(i), lab] for i, lab in enumerate([10, 2, 10, 2, 1, 1] * 3)]
    ds = load_file(_write_csv(tmp_path / "n.csv", ["f", "label"], rows))
    assert ds.class_names == ("1", "2", "10")


def test_text_column_is_detected_or_named(tmp_path):
    rows = [[i, f"message {i}, with a comma\nand a newline", "spam" if i % 2 else "ham"] for i in range(20)]
    path = _write_csv(tmp_path / "sms.csv", ["id_num", "text", "label"], rows)
    ds = load_file(path)
    assert isinstance(ds.x_train, list) and ds.feature_names == ("text",)
    assert all("with a comma\nand a newline" in t for t in ds.x_train)
    assert ds.class_names == ("ham", "spam")
    rows2 = [[f"u{i}", f"text {i}", i % 2] for i in range(20)]
    path2 = _write_csv(tmp_path / "two.csv", ["user", "text", "label"], rows2)
    with pytest.raises(ValueError, match=r"\['user', 'text'\].*text_column"):
        load_file(path2)
    assert load_file(path2, text_column="text").x_train[0].startswith("text ")
    with pytest.raises(ValueError, match="'nope'"):
        load_file(path2, label_column="nope")


def test_missing_values_are_named(tmp_path):
    path = _write_csv(tmp_path / "gap.csv", ["a", "label"], [["1", "x"], ["", "y"], ["3", "x"]])
    with pytest.raises(ValueError, match=r"'a' has missing values in data rows \[1\]"):
        load_file(path)


def test_jsonl_and_parquet_equal_the_csv(numeric_csv, tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path, x, y = numeric_csv
    ref = load_file(path, label_column="kind")
    jl = tmp_path / "animals.jsonl"
    jl.write_text("".join(json.dumps({"a": r[0], "b": r[1], "c": r[2], "kind": str(k)}) + "\n" for r, k in zip(x.tolist(), y)))
    pq = tmp_path / "animals.parquet"
    pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "c": x[:, 2], "kind": y}).to_parquet(pq)
    for other in (load_file(jl, label_column="kind"), load_file(pq, label_column="kind")):
        assert other.class_names == ref.class_names
        np.testing.assert_array_equal(other.x_train, ref.x_train)
        np.testing.assert_array_equal(other.y_train, ref.y_train)


def test_npy_features_with_a_labels_file(tmp_path):
    x, y = _table()
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    ds = load_file(tmp_path / "x.npy", labels=tmp_path / "y.npy")
    assert ds.class_names == ("cat", "dog", "zebra") and ds.x_train.shape == (72, 3)
    with pytest.raises(ValueError, match="labels"):
        load_file(tmp_path / "x.npy")


def _image_folder(root, sizes=None):
    from PIL import Image

    rng = np.random.default_rng(0)
    pixels = {}
    for c in ("b_circle", "a_square"):
        (root / c).mkdir(parents=True)
        for i in range(5):
            a = rng.integers(0, 256, size=(6, 8), dtype=np.uint8)
            size = (sizes or {}).get(f"{c}/{i}.png")
            (Image.fromarray(a).resize(size) if size else Image.fromarray(a)).save(root / c / f"{i}.png")
            pixels[f"{c}/{i}.png"] = a
    return pixels


def test_image_folder_keeps_images_as_images(tmp_path):
    pytest.importorskip("PIL")
    pixels = _image_folder(tmp_path / "shapes")
    files, classes = image_folder_files(tmp_path / "shapes")
    assert classes == ["a_square", "b_circle"] and files[0] == "a_square/0.png" and len(files) == 10
    ds = load_file(tmp_path / "shapes", test_size=0.2)
    assert ds.class_names == ("a_square", "b_circle") and ds.x_train.shape == (8, 1, 6, 8)
    x_all = np.stack([pixels[f] for f in files]).astype(np.float32)[:, None] / 255.0
    tr, _ = stratified_split(np.array([f.startswith("b_") for f in files]), test_size=0.2, seed=0)
    np.testing.assert_array_equal(ds.x_train, x_all[tr])
    assert load_file(tmp_path / "shapes", image_size=4).x_train.shape == (8, 1, 4, 4)


def test_image_folder_of_mixed_sizes_needs_image_size(tmp_path):
    pytest.importorskip("PIL")
    _image_folder(tmp_path / "mixed", sizes={"b_circle/3.png": (10, 10)})
    with pytest.raises(ValueError, match="b_circle/3.png.*image-size"):
        load_file(tmp_path / "mixed")
    assert load_file(tmp_path / "mixed", image_size=(5, 7)).x_test.shape[1:] == (1, 5, 7)


def test_mnist_can_stay_images():
    if not (data_root() / "mnist" / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip("MNIST files not present")
    ds = load("mnist", flatten=False)
    assert ds.x_test.shape == (10000, 1, 28, 28) and ds.x_test.dtype == np.float32


def test_run_on_a_text_csv_shows_class_names_and_records_them(tmp_path, capsys):
    rows = []
    words = {"spam": ["win", "prize", "cash", "free"], "ham": ["lunch", "meeting", "later", "thanks"]}
    rng = np.random.default_rng(1)
    for i in range(80):
        lab = "spam" if i % 4 == 0 else "ham"
        rows.append([" ".join(rng.choice(words[lab], 4)), lab])
    data = _write_csv(tmp_path / "sms.csv", ["message", "y"], rows)
    out = tmp_path / "runs"
    argv = ["run", "--data", str(data), "--label-column", "y", "--strategy", "margin", "--initial", "6", "--k", "4",
            "--rounds", "2", "--out", str(out), "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "new labels by class" in text and ("spam×" in text or "ham×" in text)
    jsonl = out / "sms_tfidf_margin_k4_seed0.jsonl"
    rows_out = [json.loads(line) for line in jsonl.read_text().splitlines()]
    header = rows_out[0]
    assert header["type"] == "header" and header["config"]["class_names"] == ["ham", "spam"]
    assert header["config"]["model"] == "tfidf" and header["config"]["label_column"] == "y"
    assert [r["n_labeled"] for r in rows_out[1:]] == [6, 10, 14]
    # --dataset with a path works the same (and resumes the same records)
    assert main(["run", "--dataset", str(data), *argv[3:]]) == 0
    assert len(jsonl.read_text().splitlines()) == len(rows_out)
    # BADGE works on raw text through the tfidf pipeline's gradient factors
    badge = [a if a != "margin" else "badge" for a in argv]
    assert main(badge) == 0
    assert len((out / "sms_tfidf_badge_k4_seed0.jsonl").read_text().splitlines()) == 4
    # a numeric model on text is refused with the fix in the message
    assert main([*argv, "--model", "mlp"]) == 2
    assert "--model tfidf" in capsys.readouterr().err


def test_run_own_numeric_data_with_logreg(numeric_csv, tmp_path, capsys):
    path, _, _ = numeric_csv
    assert main(["run", "--data", str(path), "--label-column", "kind", "--model", "logreg", "--strategy", "entropy",
                 "--initial", "6", "--k", "6", "--rounds", "1", "--test-size", "0.3", "--out", str(tmp_path),
                 "--no-progress"]) == 0
    rows = [json.loads(line) for line in (tmp_path / "animals_logreg_entropy_k6_seed0.jsonl").read_text().splitlines()]
    assert rows[0]["config"]["test_size"] == 0.3 and rows[0]["config"]["class_names"] == ["cat", "dog", "zebra"]


def test_data_errors_are_clear(numeric_csv, tmp_path, capsys):
    path, _, _ = numeric_csv
    assert main(["run", "--dataset", "my_data", "--out", str(tmp_path), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "'my_data'" in err and "--data" in err
    assert main(["run", "--data", str(tmp_path / "none.csv"), "--out", str(tmp_path), "--no-progress"]) == 2
    assert "none.csv" in capsys.readouterr().err
    assert main(["run", "--label-column", "y", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "--label-column" in capsys.readouterr().err
    assert main(["run", "--data", str(path), "--dataset", "digits", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "not both" in capsys.readouterr().err


# ---------------------------------------------------------------- select with ids and exclusions

@pytest.fixture
def outputs(tmp_path):
    x, _ = blobs(40, 5, 3, seed=3)
    m = FakeModel(5, 3, seed=1)
    np.save(tmp_path / "probs.npy", m.predict_proba(x))
    np.save(tmp_path / "emb.npy", m.embed(x))
    (tmp_path / "ids.txt").write_text("".join(f"item-{i:03d}\n" for i in range(40)))
    return tmp_path


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_select_writes_ids_and_never_picks_excluded_items(outputs):
    d = outputs
    base = ["select", "--probs", str(d / "probs.npy"), "--strategy", "margin", "--k", "5"]
    assert main([*base, "--out", str(d / "all.csv"), "--no-progress"]) == 0
    first = [int(r["index"]) for r in _rows(d / "all.csv")]
    assert [r["id"] for r in _rows(d / "all.csv")] == [str(i) for i in first]  # default id: the index
    (d / "sent.txt").write_text(f"item-{first[0]:03d}\nitem-{first[1]:03d}\n")
    assert main([*base, "--ids", str(d / "ids.txt"), "--exclude", str(d / "sent.txt"), "--out", str(d / "next.csv"),
                 "--no-progress"]) == 0
    rows = _rows(d / "next.csv")
    picked = [int(r["index"]) for r in rows]
    assert not {first[0], first[1]} & set(picked)
    assert picked[:3] == first[2:5]  # the same ranking, minus what was sent out
    assert [r["id"] for r in rows] == [f"item-{i:03d}" for i in picked]
    assert all(r["score"] for r in rows)


def test_select_exclude_errors_name_the_entries(outputs, capsys):
    d = outputs
    (d / "bad.txt").write_text("item-001\nitem-999\n")
    base = ["select", "--probs", str(d / "probs.npy"), "--strategy", "margin", "--k", "3", "--out", str(d / "o.csv")]
    assert main([*base, "--ids", str(d / "ids.txt"), "--exclude", str(d / "bad.txt")]) == 2
    assert "'item-999'" in capsys.readouterr().err
    assert main([*base, "--exclude", str(d / "bad.txt")]) == 2  # without --ids entries must be indices
    assert "'item-001'" in capsys.readouterr().err
    (d / "short.txt").write_text("a\nb\n")
    assert main([*base, "--ids", str(d / "short.txt")]) == 2
    assert "2 ids" in capsys.readouterr().err


def test_read_ids_formats_and_duplicates(tmp_path):
    np.save(tmp_path / "ids.npy", np.array([5, 7, 9]))
    assert read_ids(tmp_path / "ids.npy") == ["5", "7", "9"]
    _write_csv(tmp_path / "ids.csv", ["name", "id"], [["x", "a"], ["y", "b"]])
    assert read_ids(tmp_path / "ids.csv") == ["a", "b"]
    (tmp_path / "dup.txt").write_text("a\nb\na\n")
    with pytest.raises(ValueError, match="'a' appears more than once"):
        read_ids(tmp_path / "dup.txt")
    assert resolve_refs(["3", "1", "3"], n=5).tolist() == [1, 3]
    pytest.importorskip("PIL")
    _image_folder(tmp_path / "imgs")
    assert read_ids(tmp_path / "imgs") == image_folder_files(tmp_path / "imgs")[0]  # file names as ids
    with pytest.raises(ValueError, match=r"\['7'\]"):
        resolve_refs(["7"], n=5)


def _badge_reference(a, h):
    g = np.einsum("nk,nd->nkd", a, h).reshape(len(a), -1)
    out = [float(g[0] @ g[0])]
    for j in range(1, len(g)):
        out.append(float(min(((g[j] - g[i]) ** 2).sum() for i in range(j))))
    return np.array(out)


def test_badge_and_coreset_values_equal_a_plain_reference(outputs):
    from pickwise.embeddings import grad_embedding

    d = outputs
    pre = Precomputed(probs=np.load(d / "probs.npy"), embeddings=np.load(d / "emb.npy"))
    pool = Pool.empty(pre.n).label([0, 4], [0, 0])
    picks = BADGE().select(pre, pre.x, pool, 6, rng=np.random.default_rng(0))
    e = grad_embedding(*pre.grad_factors(picks))
    values = natural_values(BADGE(), pre, pre.x, pool, picks, rng=np.random.default_rng(0))
    np.testing.assert_allclose(values, _badge_reference(e.a, e.h), rtol=1e-9, atol=1e-12)
    picks = CoreSet().select(pre, pre.x, pool, 6, rng=np.random.default_rng(0))
    emb, lab = pre.embed(picks), pre.embed(pool.labeled)
    ref = [min(np.linalg.norm(emb[j] - c) for c in [*lab, *emb[:j]]) for j in range(6)]
    values = natural_values(CoreSet(), pre, pre.x, pool, picks, rng=np.random.default_rng(0))
    np.testing.assert_allclose(values, ref, rtol=1e-9)
    # k-center picks the farthest item each time: the radii never grow
    assert np.all(np.diff(values) <= 1e-12)


def test_select_writes_natural_values_or_leaves_them_empty(outputs):
    d = outputs
    # nothing labelled: core-set's first pick closes no radius, so it has no value
    expected = {"coreset": [False, True, True, True], "badge": [True] * 4, "stochastic_entropy": [True] * 4,
                "random": [False] * 4, "bait": [False] * 4}
    for name, filled in expected.items():
        out = d / f"{name}.csv"
        assert main(["select", "--probs", str(d / "probs.npy"), "--embeddings", str(d / "emb.npy"), "--strategy",
                     name, "--k", "4", "--out", str(out), "--no-progress"]) == 0
        assert [bool(r["score"]) for r in _rows(out)] == filled, name


def test_stochastic_values_are_the_scores_it_sampled_by(outputs):
    from pickwise.catalog import make_strategy
    from pickwise.strategies import Uncertainty

    d = outputs
    pre = Precomputed(probs=np.load(d / "probs.npy"))
    pool = Pool.empty(pre.n)
    strategy = make_strategy("stochastic_entropy")
    picks = strategy.select(pre, pre.x, pool, 5, rng=np.random.default_rng(2))
    values = natural_values(strategy, pre, pre.x, pool, picks, rng=np.random.default_rng(2))
    np.testing.assert_array_equal(values, Uncertainty(score="entropy").scores(pre, pre.x, picks))


# ---------------------------------------------------------------- stream refuses pool options

def test_stream_refuses_pool_options_and_states_its_defaults(tmp_path, capsys):
    for extra in (["--k", "10"], ["--strategy", "badge"], ["--rounds", "3"], ["--subsample-alpha", "0.5"],
                  ["--trainer", "ceal"]):
        assert main(["stream", "--budget", "10", "--out", str(tmp_path), "--no-progress", *extra]) == 2
        err = capsys.readouterr().err
        assert extra[0] in err and "pool option" in err
    with pytest.raises(SystemExit):
        main(["stream", "--help"])
    help_text = capsys.readouterr().out
    assert "(default: 100)" in help_text and "(default: 5000)" in help_text and "--k " not in help_text
