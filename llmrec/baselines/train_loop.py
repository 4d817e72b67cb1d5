"""What every sequential baseline shares: the config fields, the causal transformer, the ranker, and
one training loop (full-softmax next-item loss on every position, early stopping on validation
NDCG@k, seeds).

A model subclasses `SequentialModel` and says how an item becomes a vector (`embed`, for the input
sequence) and which matrix scores the catalogue (`item_matrix`); it may add auxiliary losses
(`aux_losses`, e.g. H2Rec's alignment terms). Padding is on the left; position 0 is the oldest kept
item (histories longer than `max_len` keep their last `max_len` items), so a prefix is embedded the
same way in training and at inference.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from llmrec.baselines.configs import SeqConfig
from llmrec.data.records import Example
from llmrec.io import LlmrecError, atomic_path, read_json, write_json

__all__ = ["SeqConfig", "SequentialModel", "SequentialRanker", "TrainResult", "pad_left", "read_meta", "topk_indices",
           "train_sequential", "training_windows", "valid_ndcg"]

log = logging.getLogger(__name__)


class _Block(nn.Module):
    def __init__(self, hidden: int, n_heads: int, dropout: float):
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(hidden)
        self.qkv = nn.Linear(hidden, 3 * hidden)
        self.proj = nn.Linear(hidden, hidden)
        self.ln2 = nn.LayerNorm(hidden)
        self.ff = nn.Sequential(nn.Linear(hidden, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, hidden))
        self.drop = nn.Dropout(dropout)
        self.attn_dropout = dropout

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, length, h = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(h, dim=-1)
        q, k, v = (t.view(b, length, self.n_heads, h // self.n_heads).transpose(1, 2) for t in (q, k, v))
        a = F.scaled_dot_product_attention(q, k, v, attn_mask=mask,
                                           dropout_p=self.attn_dropout if self.training else 0.0)
        x = x + self.drop(self.proj(a.transpose(1, 2).reshape(b, length, h)))
        return x + self.drop(self.ff(self.ln2(x)))


class SequentialModel(nn.Module):
    """Item vocabulary + pre-LN causal transformer (SASRec's). Score column i is `item_ids[i]`.

    Subclasses define `embed(seq)` ([B, L] 1-based indices -> [B, L, H]) and `item_matrix()`
    ([n_items, D] output vectors; D = H, or a multiple for several branches).
    """

    FORMAT: ClassVar[str] = ""
    config_class: ClassVar[type[SeqConfig]] = SeqConfig

    def __init__(self, item_ids: Sequence[str], config: SeqConfig):
        super().__init__()
        self.config = config
        config.validate()
        self.item_ids: list[str] = [str(x) for x in item_ids]
        if len(set(self.item_ids)) != len(self.item_ids):
            raise LlmrecError(f"{type(self).__name__}: item_ids contain duplicates")
        self.item_index: dict[str, int] = {x: i for i, x in enumerate(self.item_ids)}

    def _init_encoder(self) -> None:
        """The transformer (called by subclasses after their item tables, keeping init order)."""
        c = self.config
        self.pos_emb = nn.Embedding(c.max_len, c.hidden)
        self.emb_drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([_Block(c.hidden, c.n_heads, c.dropout) for _ in range(c.n_blocks)])
        self.ln_f = nn.LayerNorm(c.hidden)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    # --- to implement -----------------------------------------------------------------------------
    def embed(self, seq: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def item_matrix(self) -> torch.Tensor:
        raise NotImplementedError

    def hidden_states(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, L] indices -> [B, L, D] user states; by default the encoder over `embed(seq)`."""
        return self.encode(self.embed(seq), seq > 0)

    def aux_losses(self, inp: torch.Tensor, h: torch.Tensor, tgt: torch.Tensor,
                   keep: torch.Tensor) -> dict[str, tuple[float, torch.Tensor]]:
        """Extra training losses: name -> (weight, scalar), added to the next-item loss; none by
        default. `inp`/`tgt` are [B, L] indices, `h` = hidden_states(inp), `keep` the scored positions."""
        return {}

    def meta(self) -> dict[str, Any]:
        """Extra fields saved in config.json that the constructor needs (e.g. SID codes)."""
        return {}

    @classmethod
    def from_meta(cls, meta: dict[str, Any]) -> SequentialModel:
        return cls(meta["item_ids"], cls.config_class.from_dict(meta["config"]))

    # --- shared -----------------------------------------------------------------------------------
    def encode(self, x: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        """Item vectors [B, L, H] -> states [B, L, H]; position t sees only real positions <= t."""
        pos = (real.long().cumsum(dim=1) - 1).clamp(min=0)
        x = x * math.sqrt(self.config.hidden) + self.pos_emb(pos)
        x = self.emb_drop(x) * real.unsqueeze(-1)
        length = real.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=real.device).tril()
        # Attend to real keys at or before the query; always to itself, so no row is empty.
        mask = (causal.unsqueeze(0) & real.unsqueeze(1)) | torch.eye(length, dtype=torch.bool, device=real.device)
        mask = mask.unsqueeze(1)  # [B, 1, L, L]
        for blk in self.blocks:
            x = blk(x, mask) * real.unsqueeze(-1)
        return self.ln_f(x)

    def encode_histories(self, histories: Sequence[Sequence[str]]) -> torch.Tensor:
        """Left-padded [B, L] tensor of 1-based item indices (0 = padding); unknown ids are dropped."""
        seqs = [[self.item_index[x] + 1 for x in h if x in self.item_index][-self.config.max_len:]
                for h in histories]
        return pad_left(seqs)

    def logits(self, h: torch.Tensor, items: torch.Tensor | None = None) -> torch.Tensor:
        return h @ (self.item_matrix() if items is None else items).T

    @torch.no_grad()
    def score_items(self, histories: Sequence[Sequence[str]]) -> torch.Tensor:
        """[B, n_items] next-item scores (logits) for each history, columns in `item_ids` order."""
        was = self.training
        self.eval()
        try:
            seq = self.encode_histories(histories)
            return self.logits(self.hidden_states(seq)[:, -1, :])
        finally:
            self.train(was)

    def save(self, out_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write model.safetensors + config.json (format, config, item ids, meta(), `extra`) atomically."""
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        with atomic_path(out_dir) as tmp:
            tmp.mkdir(parents=True)
            save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()},
                      str(tmp / "model.safetensors"))
            write_json(tmp / "config.json", {"format": self.FORMAT, "config": asdict(self.config),
                                             "item_ids": self.item_ids, **self.meta(), **(extra or {})})
        return out_dir

    @classmethod
    def load(cls, model_dir: str | Path) -> SequentialModel:
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        meta = read_meta(model_dir)
        if meta.get("format") != cls.FORMAT:
            raise LlmrecError(f"{model_dir / 'config.json'}: format {meta.get('format')!r}, expected {cls.FORMAT}; "
                              "delete the folder to retrain.")
        model = cls.from_meta(meta)
        model.load_state_dict(load_file(str(model_dir / "model.safetensors")))
        model.eval()
        return model


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    """config.json of a saved model (without loading weights)."""
    return read_json(Path(model_dir) / "config.json", what="baseline model config")


def pad_left(seqs: Sequence[Sequence[int]]) -> torch.Tensor:
    length = max(1, max((len(s) for s in seqs), default=1))
    out = torch.zeros(len(seqs), length, dtype=torch.long)
    for i, s in enumerate(seqs):
        if s:
            out[i, length - len(s):] = torch.tensor(list(s), dtype=torch.long)
    return out


# --- ranking --------------------------------------------------------------------------------------
def topk_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Top-k column indices per row, ties broken by lower column index (stable sort)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return order[:, :k]


@dataclass
class SequentialRanker:
    """`Ranker` adapter (see llmrec.eval.runner): full ranking over the model's catalogue."""

    model: SequentialModel
    name: str = "sasrec"
    exclude_history: bool = False
    batch_size: int = 256

    def config(self) -> dict:
        return {"type": type(self.model).__name__, "exclude_history": self.exclude_history,
                **asdict(self.model.config)}

    def rank(self, examples: list[Example], k: int) -> list[list[str]]:
        out: list[list[str]] = []
        for lo in range(0, len(examples), self.batch_size):
            batch = examples[lo:lo + self.batch_size]
            scores = self.model.score_items([e.history for e in batch])
            if self.exclude_history:
                for i, e in enumerate(batch):
                    idx = [self.model.item_index[x] for x in e.history if x in self.model.item_index]
                    if idx:
                        scores[i, idx] = float("-inf")
            top = topk_indices(scores, min(k, self.model.n_items))
            out.extend([[self.model.item_ids[j] for j in row] for row in top.tolist()])
        return out


# --- training -------------------------------------------------------------------------------------
@dataclass
class TrainResult:
    best_epoch: int
    best_valid_ndcg: float
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {"best_epoch": self.best_epoch, "best_valid_ndcg@10": self.best_valid_ndcg,
                "epochs_run": self.epochs_run, "seconds": round(self.seconds, 2), "history": self.history}


def training_windows(sequences: Sequence[Sequence[int]], max_len: int) -> list[list[int]]:
    """Cut each sequence into windows of up to max_len + 1 items (input = w[:-1], target = w[1:]);
    windows are taken from the end so every next-item target is used exactly once."""
    out = []
    for s in sequences:
        end = len(s)
        while end >= 2:
            start = max(0, end - max_len - 1)
            out.append(list(s[start:end]))
            end = start + 1 if start > 0 else 0
    return out


def _length_buckets(lengths: Sequence[int], batch_size: int, gen: torch.Generator) -> list[list[int]]:
    """Shuffled batches of windows of similar length (little padding): shuffle, sort by length
    (stable, so equal lengths stay shuffled), cut into batches, shuffle the batch order."""
    perm = torch.randperm(len(lengths), generator=gen).tolist()
    perm.sort(key=lambda i: lengths[i])
    batches = [perm[b:b + batch_size] for b in range(0, len(perm), batch_size)]
    order = torch.randperm(len(batches), generator=gen).tolist()
    return [batches[i] for i in order]


@torch.no_grad()
def valid_ndcg(model: SequentialModel, examples: Sequence[Example], k: int = 10, batch_size: int = 512) -> float:
    """Mean NDCG@k of the target over a full ranking (ties: lower index first); unknown target -> 0."""
    if not examples:
        return 0.0
    total = 0.0
    for lo in range(0, len(examples), batch_size):
        batch = [e for e in examples[lo:lo + batch_size] if e.target in model.item_index]
        if not batch:
            continue
        scores = model.score_items([e.history for e in batch])
        j = torch.tensor([model.item_index[e.target] for e in batch])
        t = scores.gather(1, j.unsqueeze(1))
        cols = torch.arange(scores.shape[1]).unsqueeze(0)
        rank = (scores > t).sum(1) + ((scores == t) & (cols < j.unsqueeze(1))).sum(1)  # 0-based
        gain = 1.0 / torch.log2(rank.double() + 2)
        total += float(gain[rank < k].sum())
    return total / len(examples)


def train_sequential(model: SequentialModel, train_sequences: Sequence[Sequence[str]],
                     valid_examples: Sequence[Example] = (), progress: bool = True) -> TrainResult:
    """Train `model` in place on next-item targets of `train_sequences` (item ids; unknown ids are
    dropped) and keep the epoch with the best validation NDCG@k. Without validation examples every
    epoch is run and the last one is kept. Seed the model's construction yourself (torch.manual_seed);
    shuffling uses its own generator seeded from `config.seed`."""
    config = model.config
    gen = torch.Generator().manual_seed(config.seed)
    idx = model.item_index
    windows = training_windows([[idx[x] + 1 for x in s if x in idx] for s in train_sequences], config.max_len)
    name = type(model).__name__
    if not windows:
        raise LlmrecError(f"{name}: no training sequence has two or more known items; nothing to learn.")
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best_state, best, best_epoch, bad = None, -1.0, 0, 0
    history: list[dict[str, float]] = []
    t0 = time.time()
    n_batches = math.ceil(len(windows) / config.batch_size)
    lengths = [len(w) for w in windows]
    epochs_run = 0
    bar = tqdm(range(1, config.epochs + 1), desc=name, unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        sums: dict[str, float] = {}
        for batch_idx in _length_buckets(lengths, config.batch_size, gen):
            batch = pad_left([windows[i] for i in batch_idx])
            inp, tgt = batch[:, :-1], batch[:, 1:]
            h = model.hidden_states(inp)
            keep = (tgt > 0) & (inp > 0)
            loss = F.cross_entropy(model.logits(h[keep]), tgt[keep] - 1)
            parts = {"loss": loss.detach()}
            for key, (weight, value) in model.aux_losses(inp, h, tgt, keep).items():
                loss = loss + weight * value
                parts[key] = value.detach()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            for key, value in parts.items():
                sums[key] = sums.get(key, 0.0) + float(value)
        epochs_run = epoch
        row = {"epoch": epoch, **{k: v / n_batches for k, v in sums.items()}}
        if valid_examples:
            model.eval()
            score = valid_ndcg(model, valid_examples, config.eval_k, config.eval_batch_size)
            row[f"valid_ndcg@{config.eval_k}"] = score
            if score > best:
                best, best_epoch, bad = score, epoch, 0
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
            else:
                bad += 1
        history.append(row)
        bar.set_postfix({k: round(v, 4) for k, v in row.items() if k != "epoch"})
        log.debug("%s epoch %s", name, row)
        if valid_examples and bad >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = epochs_run
    model.eval()
    return TrainResult(best_epoch=best_epoch, best_valid_ndcg=max(best, 0.0), epochs_run=epochs_run,
                       seconds=time.time() - t0, history=history)
