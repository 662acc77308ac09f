"""Every AnnData key genegrad writes by default (prefix ``genegrad``)."""

UNS = "genegrad"
PREPROCESS = "genegrad_preprocess"


def connectivities(key: str = UNS) -> str:
    """``obsp``: symmetric Gaussian affinities."""
    return f"{key}_connectivities"


def diffusion(key: str = UNS) -> str:
    """``obsp``: row-stochastic diffusion operator ``P``."""
    return f"{key}_diffusion"


def frames(key: str = UNS) -> str:
    """``obsm``: tangent frames ``(N, p, d)``."""
    return f"{key}_frames"


def neighbors(key: str = UNS) -> str:
    """``obsp``: the directed kNN graph, each cell's row holding the rank (1..k) of each of its neighbours.

    Kept as a cells x cells matrix, not as positions in ``obsm``, so that AnnData reorders and subsets it with the
    cells: a subset that removes a neighbour leaves a row with fewer than ``k`` entries, which is detected.
    """
    return f"{key}_neighbors"


def operator(key: str = UNS) -> str:
    """``obsm``: local-fit coefficients ``(N, T', q, k + 1)``: one gradient operator per scale."""
    return f"{key}_operator"


def gram(key: str = UNS) -> str:
    """``obsm``: ``B^T W B`` of every local fit ``(N, T', q, q)``."""
    return f"{key}_gram"


def ridge(key: str = UNS) -> str:
    """``obsm``: ridge of every local fit ``(N, T', q)``."""
    return f"{key}_ridge"


def weights(key: str = UNS) -> str:
    """``obsm``: regression weights ``(N, k)``."""
    return f"{key}_weights"


def dof(key: str = UNS) -> str:
    """``obsm``: residual degrees of freedom of every local fit ``(N, T')``."""
    return f"{key}_dof"


def se_factors(key: str = UNS) -> str:
    """``obsm``: noise-propagation factor per cell and scale ``(N, T)``."""
    return f"{key}_se_factors"


def rep_checksum(key: str = UNS) -> str:
    """``obsm``: per cell, the sum and the sum of squares of the representation the manifold was built on."""
    return f"{key}_rep_checksum"


def gradients(key: str = UNS) -> str:
    """``obsm``: gradients ``(N, G_sel, d, T)`` in tangent coordinates."""
    return f"{key}_gradients"


def gradients_se(key: str = UNS) -> str:
    """``obsm``: standard errors of the gradients' lengths ``(N, G_sel, T)``."""
    return f"{key}_gradients_se"


def scale(key: str = UNS) -> str:
    """``var``: each differentiated gene's recommended scale (Lepski's rule; NaN for the other genes)."""
    return f"{key}_scale"


#: Everything :func:`genegrad.pp.manifold` writes, as functions of the prefix (``obsm``, ``obsp``) and the
#: entries of ``uns[prefix]`` (the tools add their own entries there later). What moves with a manifold.
MANIFOLD_OBSM = (frames, operator, gram, ridge, weights, dof, se_factors, rep_checksum)
MANIFOLD_OBSP = (connectivities, diffusion, neighbors)
MANIFOLD_UNS = ("params", "scales", "fit_scales", "n_dims", "local_spectrum", "n_components")

#: What the tools write from a manifold (suffixes after ``{prefix}_``), per slot: removed when the manifold is
#: rebuilt, so that no result of an earlier manifold stays beside the new one.
RESULTS = {
    "obsm": ("gradients", "gradients_se", "fate_probs", "fate_probs_chain", "fate_deviation", "fate_flow",
             "fate_features"),
    "obsp": ("transitions",),
    "obs": ("fate_bias", "pseudotime", "terminal_states"),
    "var": ("scale", "structured", "structured_score", "structured_pval", "structured_qval", "pattern",
            "pattern_typicality", "module"),
    "varm": ("descriptors",),
}
#: What :func:`genegrad.tl.fate_bias` (and :func:`genegrad.tl.fate_features` after it) computed from its terminal
#: states (a part of :data:`RESULTS`): removed when other terminal states replace them.
FATE_RESULTS = {"obsm": ("fate_probs", "fate_probs_chain", "fate_deviation", "fate_flow", "fate_features"),
                "obs": ("fate_bias",), "obsp": ("transitions",)}
