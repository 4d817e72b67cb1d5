"""Semantic IDs: text embedding, residual k-means, collision handling, SidMap."""

from llmrec.sid.sidmap import SidMap, parse_sid_token, sid_token

__all__ = ["SidMap", "parse_sid_token", "sid_token"]
