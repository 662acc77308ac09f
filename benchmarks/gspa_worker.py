"""GSPA's gene embeddings, run inside GSPA's own environment (see ``_envs.py``): ``python gspa_worker.py IN OUT``.

``IN`` (npz): ``cells`` (cells x features, what GSPA builds its cell graph from), ``signals`` (genes x cells, the
genes' values on the cells), ``seed``, ``condensation`` (GSPA's ``condensation_threshold``). ``OUT`` (npz):
``embedding`` (genes x 128, GSPA's autoencoded wavelet coefficients) and ``seconds``.
"""

import sys
import time

import numpy as np


def main(src, dst):
    import gspa

    data = np.load(src)
    t0 = time.perf_counter()
    op = gspa.GSPA(random_state=int(data["seed"]), verbose=False, n_jobs=2,
                   condensation_threshold=int(data["condensation"]))
    op.construct_graph(data["cells"])
    op.build_diffusion_operator()
    op.build_wavelet_dictionary()
    embedding, _ = op.get_gene_embeddings(data["signals"])
    np.savez(dst, embedding=np.asarray(embedding, dtype=np.float32), seconds=time.perf_counter() - t0)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
