"""SID construction methods behind one interface (see base.py), registered by name in QUANTIZERS:
rkmeans, random, rvq, rqvae, hybrid, pq, opq, hierarchical, words."""

from llmrec.sid.quantizers import hierarchical, hybrid, kmeans, pq, rqvae, rvq, words  # noqa: F401  (registers)
from llmrec.sid.quantizers.base import QUANTIZERS, BaseQuantizer, load_quantizer, plot_history

__all__ = ["QUANTIZERS", "BaseQuantizer", "load_quantizer", "make_quantizer", "plot_history"]


def make_quantizer(method: str, levels: int, codebook_size: int | list[int], seed: int, **settings) -> BaseQuantizer:
    """A quantizer by registered name (or `package.module:Class`), with its own settings."""
    return QUANTIZERS.get(method)(levels=levels, codebook_size=codebook_size, seed=seed, **settings)
