"""Using a trained model: the `Recommender` Python API, title resolution, chat and HTTP serving."""

from llmrec.serve.recommender import ChatReply, Recommendation, Recommender
from llmrec.serve.resolve import Match, TitleResolver, normalize

__all__ = ["ChatReply", "Match", "Recommendation", "Recommender", "TitleResolver", "normalize"]
