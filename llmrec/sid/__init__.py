"""Semantic IDs: item vectors, quantizers behind one interface (llmrec.sid.quantizers), collision
handling, SidMap."""

from llmrec.sid.sidmap import SidMap, parse_sid_token, sid_token

__all__ = ["SidMap", "parse_sid_token", "sid_token"]
