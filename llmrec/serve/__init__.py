"""Using a trained model: the `Recommender` Python API, title resolution, chat and the HTTP server
(`llmrec.serve.app` / `llmrec.serve.server`, imported on demand: FastAPI is not needed to recommend)."""

from llmrec.serve.recommender import Recommender
from llmrec.serve.resolve import Match, Mentions, TitleResolver, normalize
from llmrec.serve.types import ChatReply, Recommendation, RecRequest

__all__ = ["ChatReply", "Match", "Mentions", "RecRequest", "Recommendation", "Recommender", "TitleResolver",
           "normalize"]
