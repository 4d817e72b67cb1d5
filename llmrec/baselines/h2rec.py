"""H2Rec-style dual-branch sequential recommender (`h2rec`): hash IDs and Semantic IDs together.

After "The Best of the Two Worlds: Harmonizing Semantic and Hash IDs for Sequential Recommendation"
(H2Rec, arXiv 2512.10388). Its text gives the shape (an HID branch for each item's own
collaborative identity, a SID branch for multi-granular semantic sharing, a dual-level alignment
between them); the concrete choices below are ours:

* HID branch: one unique row per item (SASRec's table), initialised at random (`hid_init=random`) or
  from a PCA of the run's text embeddings (`hid_init=text`, RUN/sid/embeddings.npy; item text only,
  no interactions).
* SID branch: an item is the sum of its per-level code embeddings (as in `sasrec-sid`), so items
  sharing a coarse code share those parameters.
* One causal transformer (SASRec's) reads each branch's sequence separately (shared weights);
  fusion by concatenation: the user state is [h_hid; h_sid], an item is [e_hid; e_sid], so the
  score is h_hid . e_hid + h_sid . e_sid and the full-softmax next-item loss trains both together.
* Item-level alignment: symmetric InfoNCE between an item's HID and SID vectors over the distinct
  target items of a batch (positive = same item). It pulls a rarely seen item's HID row toward its
  semantics and the codes toward collaborative structure, while other items stay negatives (so the
  HID rows keep their identity).
* User-level alignment: symmetric InfoNCE between the two branches' states at the last position of
  each training window (positive = same window, negatives = the batch's other windows).

Same training loop, early stopping on validation NDCG@10 and caching as SASRec
(llmrec.baselines.train_loop / cache). The defaults (weights 0.1, temperature 0.2, random HID rows)
were the best of a small grid on amazon18_scientific's validation split (README; the test split was
not used to choose them); each alignment term adds on its own there.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from llmrec.baselines.cache import cached_model, data_fingerprint
from llmrec.baselines.configs import H2RecConfig
from llmrec.baselines.sid_embed import SidEmbedding, codes_fingerprint, load_run_sids, load_run_text_vectors
from llmrec.baselines.train_loop import SequentialModel, TrainResult, train_sequential
from llmrec.data.records import Example
from llmrec.io import LlmrecError, sha256_json

FORMAT = "llmrec.h2rec/1"


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE between rows of a and b ([n, d] each, cosine similarity / temperature);
    row i of a and row i of b are the positive pair, every other row a negative. >= 0; near 0 when
    each pair is far more similar than any other; 0 for n = 1."""
    if a.shape != b.shape or a.dim() != 2:
        raise ValueError(f"info_nce needs two [n, d] tensors of one shape (got {tuple(a.shape)}, {tuple(b.shape)})")
    logits = F.normalize(a, dim=-1) @ F.normalize(b, dim=-1).T / temperature
    labels = torch.arange(a.shape[0], device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def pca_rows(vectors: np.ndarray, dims: int, std: float = 0.02, seed: int = 0) -> torch.Tensor:
    """[n, dims] principal-component scores of `vectors`, scaled to an overall std of `std`
    (missing dimensions, when the vectors have fewer, are filled with small noise)."""
    x = np.asarray(vectors, dtype=np.float64)
    x = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    proj = x @ vt[:dims].T
    if proj.shape[1] < dims:
        rng = np.random.default_rng(seed)
        proj = np.concatenate([proj, rng.normal(0, proj.std() or 1.0, (len(x), dims - proj.shape[1]))], axis=1)
    proj *= std / (proj.std() or 1.0)
    return torch.tensor(proj, dtype=torch.float32)


class H2Rec(SequentialModel):
    """Dual-branch (HID + SID) model; the state is [h_hid; h_sid] and an item [e_hid; e_sid]."""

    FORMAT = FORMAT
    config_class = H2RecConfig

    def __init__(self, item_ids: Sequence[str], codes: Sequence[Sequence[int]], level_sizes: Sequence[int],
                 config: H2RecConfig | None = None, text_vectors: np.ndarray | None = None):
        super().__init__(item_ids, config or H2RecConfig())
        c = self.config
        if len(codes) != self.n_items:
            raise ValueError(f"{len(codes)} SID code lists for {self.n_items} items")
        self.codes_list = [list(map(int, x)) for x in codes]
        self.level_sizes = [int(s) for s in level_sizes]
        self.hid_emb = nn.Embedding(self.n_items + 1, c.hidden, padding_idx=0)
        self.sid_emb = SidEmbedding(self.codes_list, self.level_sizes, c.hidden)
        self._init_encoder()
        nn.init.normal_(self.hid_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            if text_vectors is not None:  # hid_init=text (a loaded model gets its weights from the file)
                if len(text_vectors) != self.n_items:
                    raise ValueError(f"{len(text_vectors)} text vectors for {self.n_items} items")
                self.hid_emb.weight[1:] = pca_rows(text_vectors, c.hidden, seed=c.seed)
            self.hid_emb.weight[0].zero_()

    def hidden_states(self, seq: torch.Tensor) -> torch.Tensor:
        real = seq > 0
        return torch.cat([self.encode(self.hid_emb(seq), real), self.encode(self.sid_emb(seq), real)], dim=-1)

    def item_matrix(self) -> torch.Tensor:
        return torch.cat([self.hid_emb.weight[1:], self.sid_emb.all_items()], dim=-1)

    def aux_losses(self, inp: torch.Tensor, h: torch.Tensor, tgt: torch.Tensor,
                   keep: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        c = self.config
        out: dict[str, tuple[float, torch.Tensor]] = {}
        if c.item_align_weight > 0:
            items = torch.unique(tgt[keep])
            out["item_align"] = (c.item_align_weight,
                                 info_nce(self.hid_emb(items), self.sid_emb(items), c.temperature))
        if c.user_align_weight > 0:
            last = h[:, -1, :]  # windows are left-padded: the last position is always a real item
            out["user_align"] = (c.user_align_weight,
                                 info_nce(last[:, :c.hidden], last[:, c.hidden:], c.temperature))
        return out

    def meta(self) -> dict[str, Any]:
        return {"codes": self.codes_list, "level_sizes": self.level_sizes}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> H2Rec:
        return cls(meta["item_ids"], meta["codes"], meta["level_sizes"], cls.config_class.from_dict(meta["config"]))


def train_h2rec(train_sequences: Sequence[Sequence[str]], item_ids: Sequence[str], codes: Sequence[Sequence[int]],
                level_sizes: Sequence[int], valid_examples: Sequence[Example] = (),
                config: H2RecConfig | None = None, text_vectors: np.ndarray | None = None,
                progress: bool = True) -> tuple[H2Rec, TrainResult]:
    config = config or H2RecConfig()
    if (config.hid_init == "text") != (text_vectors is not None):
        raise LlmrecError("h2rec: give text_vectors exactly when hid_init=text "
                          "(one row per item, e.g. RUN/sid/embeddings.npy from `llmrec sid build`)")
    torch.manual_seed(config.seed)
    model = H2Rec(item_ids, codes, level_sizes, config, text_vectors)
    return model, train_sequential(model, train_sequences, valid_examples, progress)


def cached_h2rec(run: str | Path, prepared, config: H2RecConfig | None = None, *, retrain: bool = False,
                 progress: bool = True) -> tuple[H2Rec, dict[str, Any]]:
    """RUN/baselines/h2rec, trained on the run's training split with RUN/sid (map, and text vectors
    when hid_init=text)."""
    cfg = config or H2RecConfig()
    catalogue = list(prepared.items)
    codes, levels, sid_map = load_run_sids(run, catalogue)
    inputs = {"sid": codes_fingerprint(codes, levels)}
    vectors = None
    if cfg.hid_init == "text":
        vectors = load_run_text_vectors(run, catalogue, sid_map)
        if vectors is None:
            raise LlmrecError(f"{Path(run) / 'sid' / 'embeddings.npy'}: missing or not one row per catalogue "
                              "item; h2rec.hid_init=text needs it (rerun `llmrec sid build --run RUN`) "
                              "or set hid_init=random.")
        inputs["text"] = sha256_json(vectors.round(5).tolist())[:16]

    def train() -> tuple[H2Rec, dict[str, Any]]:
        seqs = list(prepared.split.train_items().values())
        model, res = train_h2rec(seqs, catalogue, codes, levels, prepared.split.valid, cfg, vectors, progress)
        return model, res.info()

    return cached_model(Path(run) / "baselines" / "h2rec", H2Rec, prepared, asdict(cfg), train,
                        data_fingerprint(prepared), retrain=retrain, inputs=inputs)
