"""`ServeSettings`: everything `llmrec serve` configures (light: the CLI checks it before FastAPI or a
model is imported; worker processes read it back from LLMREC_SERVE_SETTINGS)."""

from __future__ import annotations

from dataclasses import dataclass

from llmrec.config import option
from llmrec.io import LlmrecError


@dataclass
class ServeSettings:
    """The HTTP server's model, limits and access rules."""

    model: str | None = option(None, help="bundle folder, run folder (runs/NAME), model folder, or Hub id")
    name: str | None = option(None, help="model id in responses (default: the bundle's name, never a local path)")
    device: str | None = option(None, help="cpu, cuda, cuda:1 (default: where the model loads)")
    use_embeddings: bool = option(True, help="MiniLM title matching beside fuzzy matching")
    api_key: str | None = option(None, help="require 'Authorization: Bearer KEY' (default: $LLMREC_API_KEY; "
                                 "/health stays open)")
    cors_origins: list[str] = option(default_factory=list, help="allow browser calls from these origins ('*': any)")
    max_body: int = option(1024 * 1024, help="largest request body in bytes")
    body_timeout: float = option(30.0, help="seconds to receive a request body")
    request_timeout: float = option(120.0, help="seconds from body received to answer")
    max_batch: int = option(64, help="most requests decoded in one beam search")
    prep_threads: int = option(2, help="threads for parsing histories, title resolution, prompt rendering")
    access_log: bool = option(True, help="log one line per request")
    host: str = option("127.0.0.1", help="bind address (0.0.0.0 exposes it)")
    port: int = option(8000, help="port")
    workers: int = option(1, help="worker processes sharing the port (each loads the model)")
    max_concurrency: int = option(1024, help="open connections + requests before answering 503")

    def validate(self) -> None:
        for name in ("max_body", "max_batch", "prep_threads", "workers", "max_concurrency"):
            if getattr(self, name) < 1:
                raise LlmrecError(f"{name} must be at least 1, got {getattr(self, name)}")
        for name in ("body_timeout", "request_timeout"):
            if getattr(self, name) <= 0:
                raise LlmrecError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise LlmrecError(f"port must be 0..65535, got {self.port}")
