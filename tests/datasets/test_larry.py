"""The LARRY loader reads the published layout, and the clonal fates of day-2 cells are counted by hand here."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest
from scipy import io, sparse

import genegrad as gg

#: cell: (time point, cell type, clone or None). Clone 0: day-2 cell a, 2 neutrophils and 1 monocyte later
#: (share 2/3, neutrophil); clone 1: b and c at day 2, 1 monocyte later (share 0, monocyte); clone 2: d, one of
#: each (share 1/2, a tie: no fate); clone 3: e, only a later basophil (no fate, no share); f: day 2, no clone;
#: g: in two clones (ambiguous: no clone).
CELLS = {
    "a": (2, "undiff", 0), "n1": (4, "Neutrophil", 0), "n2": (6, "Neutrophil", 0), "m1": (6, "Monocyte", 0),
    "b": (2, "undiff", 1), "c": (2, "undiff", 1), "m2": (4, "Monocyte", 1),
    "d": (2, "undiff", 2), "n3": (4, "Neutrophil", 2), "m3": (4, "Monocyte", 2),
    "e": (2, "undiff", 3), "ba": (6, "Baso", 3),
    "f": (2, "undiff", None), "g": (2, "undiff", "both"),
}


def _write(folder, *, gz=True, drop=None):
    names = list(CELLS)
    n = len(names)
    rng = np.random.default_rng(0)
    normed = sparse.random(n, 5, density=0.6, random_state=1, format="coo") * 10
    clones = np.zeros((n, 4))
    for i, (_, _, c) in enumerate(CELLS.values()):
        if c == "both":
            clones[i, [0, 1]] = 1
        elif c is not None:
            clones[i, c] = 1
    meta = pd.DataFrame({
        "Library": ["d2_1"] * n, "Cell barcode": names, "Time point": [t for t, _, _ in CELLS.values()],
        "Starting population": ["Lin-Kit+Sca1+"] * n, "Cell type annotation": [k for _, k, _ in CELLS.values()],
        "Well": [0 if t == 2 else 1 for t, _, _ in CELLS.values()],
        "SPRING-x": rng.normal(size=n), "SPRING-y": rng.normal(size=n)})
    files = {"stateFate_inVitro_normed_counts.mtx": lambda p: io.mmwrite(p, normed),
             "stateFate_inVitro_clone_matrix.mtx": lambda p: io.mmwrite(p, sparse.coo_matrix(clones)),
             "stateFate_inVitro_metadata.txt": lambda p: meta.to_csv(p, sep="\t", index=False),
             "stateFate_inVitro_gene_names.txt": lambda p: p.write_text("\n".join(["Gata1", "Mpo", "Elane",
                                                                                  "Csf1r", "Mpo"]) + "\n")}
    for name, write in files.items():
        if name == drop:
            continue
        plain = folder / name
        write(plain)
        if gz and name.endswith((".mtx", "metadata.txt")):
            (folder / f"{name}.gz").write_bytes(gzip.compress(plain.read_bytes()))
            plain.unlink()
    return normed.tocsr(), meta


def test_reads_the_published_layout_with_clonal_fates(tmp_path):
    normed, meta = _write(tmp_path)
    a = gg.datasets.larry(tmp_path)
    assert a.shape == (len(CELLS), 5)
    assert list(a.obs["barcode"]) == list(CELLS)
    assert list(a.var_names) == ["Gata1", "Mpo", "Elane", "Csf1r", "Mpo-1"]
    np.testing.assert_allclose(a.layers["normalized"].toarray(), normed.toarray(), rtol=1e-6)
    np.testing.assert_allclose(a.X.toarray(), np.log1p(normed.toarray()), rtol=1e-6)
    np.testing.assert_allclose(a.obsm["X_spring"], meta[["SPRING-x", "SPRING-y"]].to_numpy())
    assert list(a.obs["time_point"]) == [t for t, _, _ in CELLS.values()]
    clone = dict(zip(CELLS, a.obs["clone"], strict=True))
    assert (clone["a"], clone["c"], clone["e"], clone["f"], clone["g"]) == (0, 1, 3, -1, -1)
    share = dict(zip(CELLS, a.obs["clonal_fate_share"], strict=True))
    fate = dict(zip(CELLS, a.obs["clonal_fate"].astype(object), strict=True))
    assert share["a"] == pytest.approx(2 / 3)
    assert fate["a"] == "Neutrophil"
    assert share["b"] == share["c"] == pytest.approx(0.0)
    assert fate["b"] == fate["c"] == "Monocyte"
    assert share["d"] == pytest.approx(0.5)
    assert pd.isna(fate["d"])  # a tie
    for cell in ("e", "f", "g", "n1", "m2"):  # no later neutrophil or monocyte, no clone, or not a day-2 cell
        assert np.isnan(share[cell])
        assert pd.isna(fate[cell])
    assert list(a.obs["clonal_fate"].cat.categories) == ["Neutrophil", "Monocyte"]


def test_plain_files_and_other_fates(tmp_path):
    _write(tmp_path, gz=False)
    a = gg.datasets.larry(tmp_path, fates=["Monocyte", "Neutrophil"])
    share = dict(zip(CELLS, a.obs["clonal_fate_share"], strict=True))
    assert share["a"] == pytest.approx(1 / 3)
    assert share["b"] == pytest.approx(1.0)


def test_missing_and_inconsistent_files_say_what_to_do(tmp_path):
    _write(tmp_path, drop="stateFate_inVitro_clone_matrix.mtx")
    with pytest.raises(FileNotFoundError, match=r"clone_matrix\.mtx.*Download them from https://kleintools"):
        gg.datasets.larry(tmp_path)
    io.mmwrite(tmp_path / "stateFate_inVitro_clone_matrix.mtx", sparse.coo_matrix(np.ones((3, 2))))
    with pytest.raises(ValueError, match=r"disagree.*3 clone-matrix rows"):
        gg.datasets.larry(tmp_path)


@pytest.mark.parametrize(("fates", "match"), [
    (["Neutrophil"], "at least two distinct"),
    ("Neutrophil", "at least two distinct"),
    (["Neutrophil", "Neutrophil"], "at least two distinct"),
    (["Neutrophil", "Erythroid"], r"\['Erythroid'\] name no 'Cell type annotation'.*Monocyte"),
])
def test_fates_must_be_cell_types_of_the_data(tmp_path, fates, match):
    _write(tmp_path)
    with pytest.raises(ValueError, match=match):
        gg.datasets.larry(tmp_path, fates=fates)
