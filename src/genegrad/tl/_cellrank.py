"""genegrad's dynamics as a CellRank kernel."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .. import _keys
from .._validation import require_key

if TYPE_CHECKING:
    import anndata as ad


def to_cellrank(adata: ad.AnnData, *, key: str = _keys.UNS) -> Any:
    """The transitions of :func:`genegrad.tl.fate_bias` as a CellRank ``PrecomputedKernel``.

    They are oriented in time when ``fate_bias`` had a root or a ``time_key``, and tilted along the fate flows
    when it ran with ``beta > 0``. CellRank's estimators (e.g. ``cellrank.estimators.GPCCA``) then run on
    genegrad's dynamics. Needs the optional ``cellrank`` package (``pip install cellrank``).

    The kernel is the chain: CellRank's fate probabilities from it are the chain's,
    ``obsm['genegrad_fate_probs_chain']``, not the probabilities that :func:`genegrad.get.fates` reports, which
    add the fine-scale evidence of ``fate_bias`` where its step ran (``uns['genegrad']['fate_bias']['fine_step']``).

    Parameters
    ----------
    adata
        Data on which :func:`genegrad.tl.fate_bias` ran.
    key
        Prefix of the keys :func:`genegrad.tl.fate_bias` wrote.
    """
    name = f"{key}_transitions"
    require_key(adata, "obsp", name, fix="run `genegrad.tl.fate_bias` first")
    try:
        from cellrank.kernels import PrecomputedKernel
    except ImportError as err:
        msg = "`to_cellrank` needs CellRank: `pip install cellrank`."
        raise ImportError(msg) from err
    return PrecomputedKernel(name, adata=adata)
