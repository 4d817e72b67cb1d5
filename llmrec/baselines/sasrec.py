"""SASRec: an ID-based self-attentive sequential recommender (Kang & McAuley, 2018), on CPU torch.

Item embeddings (tied with the output layer) + learned positional embeddings, pre-LN causal
self-attention blocks, dropout. Trained with full softmax cross-entropy over all catalogue items on
every next-item target of the training sequences; early stopping on validation NDCG@10 (never the
test split). `SASRec.score_items(histories)` returns [B, n_items] logits in `item_ids` order, so it
can serve later as a collaborative reward model.

Padding is on the left; position 0 is the oldest kept item (histories longer than `max_len` keep
their last `max_len` items), so a prefix is embedded the same way in training and at inference.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from llmrec.data.records import Example
from llmrec.io import LlmrecError, atomic_path, read_json, write_json

log = logging.getLogger(__name__)
FORMAT = "llmrec.sasrec/1"


@dataclass
class SASRecConfig:
    hidden: int = 64
    max_len: int = 50
    n_blocks: int = 2
    n_heads: int = 1
    dropout: float = 0.2
    lr: float = 1e-3
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 50
    patience: int = 5
    seed: int = 42
    eval_k: int = 10
    eval_batch_size: int = 512

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SASRecConfig:
        names = {f.name for f in fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise LlmrecError(f"SASRec config: unknown field(s) {sorted(unknown)}; known: {sorted(names)}")
        return cls(**d)


class _Block(nn.Module):
    def __init__(self, hidden: int, n_heads: int, dropout: float):
        super().__init__()
        if hidden % n_heads:
            raise LlmrecError(f"SASRec config: hidden={hidden} must be divisible by n_heads={n_heads}")
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


class SASRec(nn.Module):
    """The network plus its item vocabulary (`item_ids[i]` is the item of score column i)."""

    def __init__(self, item_ids: Sequence[str], config: SASRecConfig | None = None):
        super().__init__()
        self.config = config or SASRecConfig()
        self.item_ids: list[str] = [str(x) for x in item_ids]
        if len(set(self.item_ids)) != len(self.item_ids):
            raise LlmrecError("SASRec: item_ids contain duplicates")
        self.item_index: dict[str, int] = {x: i for i, x in enumerate(self.item_ids)}
        c = self.config
        self.item_emb = nn.Embedding(len(self.item_ids) + 1, c.hidden, padding_idx=0)  # row 0 = padding
        self.pos_emb = nn.Embedding(c.max_len, c.hidden)
        self.emb_drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList([_Block(c.hidden, c.n_heads, c.dropout) for _ in range(c.n_blocks)])
        self.ln_f = nn.LayerNorm(c.hidden)
        nn.init.normal_(self.item_emb.weight, std=0.02)
        nn.init.normal_(self.pos_emb.weight, std=0.02)
        with torch.no_grad():
            self.item_emb.weight[0].zero_()

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    # --- encoding -------------------------------------------------------------------------------
    def encode_histories(self, histories: Sequence[Sequence[str]]) -> torch.Tensor:
        """Left-padded [B, L] tensor of 1-based item indices (0 = padding); unknown ids are dropped."""
        seqs = [[self.item_index[x] + 1 for x in h if x in self.item_index][-self.config.max_len:]
                for h in histories]
        length = max(1, max((len(s) for s in seqs), default=1))
        out = torch.zeros(len(seqs), length, dtype=torch.long)
        for i, s in enumerate(seqs):
            if s:
                out[i, length - len(s):] = torch.tensor(s, dtype=torch.long)
        return out

    def hidden_states(self, seq: torch.Tensor) -> torch.Tensor:
        """[B, L] indices -> [B, L, H]; position t sees only positions <= t."""
        real = seq > 0
        pos = (real.long().cumsum(dim=1) - 1).clamp(min=0)
        x = self.item_emb(seq) * math.sqrt(self.config.hidden) + self.pos_emb(pos)
        x = self.emb_drop(x) * real.unsqueeze(-1)
        length = seq.shape[1]
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        # Attend to real keys at or before the query; always to itself, so no row is empty.
        mask = (causal.unsqueeze(0) & real.unsqueeze(1)) | torch.eye(length, dtype=torch.bool, device=seq.device)
        mask = mask.unsqueeze(1)  # [B, 1, L, L]
        for blk in self.blocks:
            x = blk(x, mask) * real.unsqueeze(-1)
        return self.ln_f(x)

    def logits(self, h: torch.Tensor) -> torch.Tensor:
        return h @ self.item_emb.weight[1:].T

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

    # --- persistence ----------------------------------------------------------------------------
    def save(self, out_dir: str | Path, extra: dict[str, Any] | None = None) -> Path:
        """Write model.safetensors + config.json (config, item ids, `extra`) atomically as one folder."""
        from safetensors.torch import save_file

        out_dir = Path(out_dir)
        with atomic_path(out_dir) as tmp:
            tmp.mkdir(parents=True)
            save_file({k: v.detach().contiguous() for k, v in self.state_dict().items()},
                      str(tmp / "model.safetensors"))
            write_json(tmp / "config.json", {"format": FORMAT, "config": asdict(self.config),
                                             "item_ids": self.item_ids, **(extra or {})})
        return out_dir

    @classmethod
    def load(cls, model_dir: str | Path) -> SASRec:
        from safetensors.torch import load_file

        model_dir = Path(model_dir)
        meta = read_json(model_dir / "config.json", what="SASRec config")
        if meta.get("format") != FORMAT:
            raise LlmrecError(f"{model_dir / 'config.json'}: format {meta.get('format')!r}, expected {FORMAT}; "
                              "delete the folder to retrain.")
        model = cls(meta["item_ids"], SASRecConfig.from_dict(meta["config"]))
        model.load_state_dict(load_file(str(model_dir / "model.safetensors")))
        model.eval()
        return model


def read_meta(model_dir: str | Path) -> dict[str, Any]:
    """config.json of a saved SASRec (without loading weights)."""
    return read_json(Path(model_dir) / "config.json", what="SASRec config")


# --- ranking ------------------------------------------------------------------------------------
def topk_indices(scores: torch.Tensor, k: int) -> torch.Tensor:
    """Top-k column indices per row, ties broken by lower column index (stable sort)."""
    order = torch.sort(scores, dim=1, descending=True, stable=True).indices
    return order[:, :k]


@dataclass
class SASRecRanker:
    """`Ranker` adapter: full ranking over all items by SASRec scores."""

    model: SASRec
    name: str = "sasrec"
    exclude_history: bool = False
    batch_size: int = 256

    def config(self) -> dict:
        return {"type": "SASRec", "exclude_history": self.exclude_history, **asdict(self.model.config)}

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


# --- training -----------------------------------------------------------------------------------
@dataclass
class TrainResult:
    best_epoch: int
    best_valid_ndcg: float
    epochs_run: int
    seconds: float
    history: list[dict[str, float]] = field(default_factory=list)


def _training_windows(sequences: Sequence[Sequence[int]], max_len: int) -> list[list[int]]:
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


def _pad_left(windows: list[list[int]]) -> torch.Tensor:
    length = max(len(w) for w in windows)
    out = torch.zeros(len(windows), length, dtype=torch.long)
    for i, w in enumerate(windows):
        out[i, length - len(w):] = torch.tensor(w, dtype=torch.long)
    return out


@torch.no_grad()
def valid_ndcg(model: SASRec, examples: Sequence[Example], k: int = 10, batch_size: int = 512) -> float:
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


def train_sasrec(train_sequences: Sequence[Sequence[str]], item_ids: Sequence[str],
                 valid_examples: Sequence[Example] = (), config: SASRecConfig | None = None,
                 progress: bool = True) -> tuple[SASRec, TrainResult]:
    """Train on next-item targets of `train_sequences`; keep the epoch with the best valid NDCG@k.

    Without validation examples every epoch is run and the last one is kept.
    """
    config = config or SASRecConfig()
    torch.manual_seed(config.seed)
    gen = torch.Generator().manual_seed(config.seed)
    model = SASRec(item_ids, config)
    idx = model.item_index
    seqs = [[idx[x] + 1 for x in s if x in idx] for s in train_sequences]
    windows = _training_windows(seqs, config.max_len)
    if not windows:
        raise LlmrecError("SASRec: no training sequence has two or more known items; nothing to learn.")
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    best_state, best, best_epoch, bad = None, -1.0, 0, 0
    history: list[dict[str, float]] = []
    t0 = time.time()
    n_batches = math.ceil(len(windows) / config.batch_size)
    lengths = [len(w) for w in windows]
    epochs_run = 0
    bar = tqdm(range(1, config.epochs + 1), desc="SASRec", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        loss_sum = 0.0
        for batch_idx in _length_buckets(lengths, config.batch_size, gen):
            batch = _pad_left([windows[i] for i in batch_idx])
            inp, tgt = batch[:, :-1], batch[:, 1:]
            h = model.hidden_states(inp)
            keep = (tgt > 0) & (inp > 0)
            logits = model.logits(h[keep])
            loss = F.cross_entropy(logits, tgt[keep] - 1)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            loss_sum += float(loss.detach())
        epochs_run = epoch
        row = {"epoch": epoch, "loss": loss_sum / n_batches}
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
        log.debug("SASRec epoch %s", row)
        if valid_examples and bad >= config.patience:
            break
    if best_state is not None:
        model.load_state_dict(best_state)
    else:
        best_epoch = epochs_run
    model.eval()
    result = TrainResult(best_epoch=best_epoch, best_valid_ndcg=max(best, 0.0), epochs_run=epochs_run,
                         seconds=time.time() - t0, history=history)
    return model, result


def cached_sasrec(run: str | Path, prepared, *, epochs: int | None = None, seed: int = 42,
                  retrain: bool = False, any_config: bool = False) -> tuple[SASRec, dict[str, Any]]:
    """RUN/baselines/sasrec when it was built from this run's data and config (with `any_config`:
    from this run's data, whatever its config), else train it (early stopping on valid) and cache
    it there; returns (model, training info)."""
    cfg = SASRecConfig(seed=seed)
    if epochs is not None:
        cfg.epochs = epochs
    folder = Path(run) / "baselines" / "sasrec"
    catalogue = list(prepared.items)
    if not retrain and (folder / "config.json").exists():
        meta = read_meta(folder)
        if (meta.get("data_fingerprint") == prepared.fingerprint and meta.get("item_ids") == catalogue
                and (any_config or meta.get("config") == asdict(cfg))):
            log.info("using cached SASRec from %s", folder)
            return SASRec.load(folder), meta.get("train", {})
        log.info("%s was built from other data or config; retraining", folder)
    seqs = [[x.item for x in seq] for seq in prepared.split.train.values()]
    model, res = train_sasrec(seqs, catalogue, prepared.split.valid, cfg)
    train_info = {"best_epoch": res.best_epoch, "best_valid_ndcg@10": res.best_valid_ndcg,
                  "epochs_run": res.epochs_run, "seconds": round(res.seconds, 2), "history": res.history}
    model.save(folder, extra={"data_fingerprint": prepared.fingerprint, "train": train_info})
    log.info("SASRec trained in %.1fs (best epoch %d, valid NDCG@10 %.4f); saved to %s",
             res.seconds, res.best_epoch, res.best_valid_ndcg, folder)
    return model, train_info
