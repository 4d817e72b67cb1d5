"""SID tokens in the vocabulary: add them atomically, size the embeddings, initialise their rows.

Special or not? SID tokens are added as `AddedToken(tok, normalized=False, special=False)`.

- Added tokens are matched before pre-tokenisation whether or not they are special, so
  `<a_1><b_2><c_3>` is exactly three ids and never picks up a byte-level 'Ġ' piece.
- TRL's GRPO (and most user-facing code) decodes completions with `skip_special_tokens=True`;
  a *special* SID token would vanish from the decoded text and every text-based reward would see
  an empty answer. Non-special SID tokens survive that decode, so both the text path and the
  id path (`completion_ids`, preferred downstream) see the same SID.
- Chat/EOS handling is unaffected: `<|im_end|>` etc. stay special and are still skipped.

The tokenizer remembers which SidMap it was extended with (`tokenizer.init_kwargs['llmrec_sid']`,
and `llmrec_sid.json` beside a saved tokenizer); `check_sid_map` refuses a different map.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch

from llmrec.data.records import Item
from llmrec.io import LlmrecError, read_json
from llmrec.sid.sidmap import SidMap

log = logging.getLogger(__name__)

SID_RECORD_FILE = "llmrec_sid.json"
SID_RECORD_KEY = "llmrec_sid"
INIT_MODES = ("semantic", "mean", "random")


# ---- vocabulary ---------------------------------------------------------------------------------
def add_sid_tokens(tokenizer, sid_map: SidMap) -> list[int]:
    """Add every SID token of `sid_map` (level by level) as one atomic, non-special vocabulary entry.

    Returns the token ids in `sid_map.all_tokens()` order. Tokens already present are reused.
    """
    from tokenizers import AddedToken

    tokens = sid_map.all_tokens()
    vocab = tokenizer.get_vocab()
    new = [AddedToken(t, normalized=False, special=False, single_word=False, lstrip=False, rstrip=False)
           for t in tokens if t not in vocab]
    if new:
        tokenizer.add_tokens(new)
    ids = tokenizer.convert_tokens_to_ids(tokens)
    vocab = tokenizer.get_vocab()
    bad = [t for t, i in zip(tokens, ids) if vocab.get(t) != i]
    if bad:
        raise LlmrecError(f"tokenizer did not accept SID tokens {bad[:3]} as single entries.")
    return list(ids)


def sid_token_id_table(tokenizer, sid_map: SidMap) -> torch.LongTensor:
    """Token id per (level, code) as a LongTensor [levels, max_codes]; -1 where the code does not exist."""
    vocab = tokenizer.get_vocab()
    width = max(sid_map.level_sizes)
    table = torch.full((sid_map.num_levels, width), -1, dtype=torch.long)
    missing = []
    for lvl, size in enumerate(sid_map.level_sizes):
        for code in range(size):
            tok = sid_map.token(lvl, code)
            if tok in vocab:
                table[lvl, code] = vocab[tok]
            else:
                missing.append(tok)
    if missing:
        raise LlmrecError(f"tokenizer lacks {len(missing)} SID tokens of this SidMap (e.g. {missing[:3]}); "
                          "load the model with llmrec.llm.load_model or add them with load_base.")
    return table


# ---- pairing with a SidMap -----------------------------------------------------------------------
def sid_record(tokenizer, sid_map: SidMap, ids: list[int] | None = None) -> dict[str, Any]:
    """What a tokenizer stores about its SidMap: fingerprint, levels and the SID token id range."""
    if ids is None:
        ids = sid_token_id_table(tokenizer, sid_map).flatten().tolist()
        ids = [i for i in ids if i >= 0]
    return {
        "fingerprint": sid_map.fingerprint,
        "levels": list(sid_map.level_sizes),
        "num_tokens": len(ids),
        "first_id": int(min(ids)),
        "last_id": int(max(ids)),
        "contiguous": sorted(ids) == list(range(min(ids), max(ids) + 1)),
        "num_items": len(sid_map),
    }


def record_sid_map(tokenizer, sid_map: SidMap, ids: list[int] | None = None) -> dict[str, Any]:
    """Attach the SidMap record to `tokenizer.init_kwargs` (saved in tokenizer_config.json)."""
    rec = sid_record(tokenizer, sid_map, ids)
    tokenizer.init_kwargs[SID_RECORD_KEY] = rec
    return rec


def read_sid_record(model_dir_or_tokenizer) -> tuple[dict[str, Any] | None, str]:
    """(record, where) from a saved model folder or a tokenizer object; record None if absent."""
    if isinstance(model_dir_or_tokenizer, (str, Path)):
        path = Path(model_dir_or_tokenizer)
        rec_file = path / SID_RECORD_FILE
        if rec_file.exists():
            return read_json(rec_file, "SID record"), str(path)
        cfg = path / "tokenizer_config.json"
        if cfg.exists():
            return read_json(cfg, "tokenizer config").get(SID_RECORD_KEY), str(path)
        raise LlmrecError(f"{path}: not a saved llmrec model (no {SID_RECORD_FILE} or tokenizer_config.json).")
    tok = model_dir_or_tokenizer
    name = getattr(tok, "name_or_path", "") or type(tok).__name__
    return tok.init_kwargs.get(SID_RECORD_KEY), name


def check_sid_map(model_dir_or_tokenizer, sid_map: SidMap | str | Path) -> dict[str, Any]:
    """Raise LlmrecError unless the model/tokenizer was built with this SidMap; returns the record."""
    if isinstance(sid_map, (str, Path)):
        source = str(sid_map)
        sid_map = SidMap.load(sid_map)
    else:
        source = str(sid_map.meta.get("source") or "the SidMap object passed in")
    rec, where = read_sid_record(model_dir_or_tokenizer)
    if rec is None:
        raise LlmrecError(f"model {where} records no SidMap (it has no SID tokens added by llmrec); "
                          "build it with llmrec.llm.load_base(..., sid_map=...).")
    if rec.get("fingerprint") != sid_map.fingerprint:
        raise LlmrecError(
            f"model {where} was trained with SidMap fingerprint {rec.get('fingerprint')}, you passed "
            f"{sid_map.fingerprint} (from {source}); use the sid_map.json saved with the model.")
    if not isinstance(model_dir_or_tokenizer, (str, Path)):
        ids = sid_token_id_table(model_dir_or_tokenizer, sid_map)
        ids = ids[ids >= 0]
        if int(ids.min()) != rec["first_id"] or int(ids.max()) != rec["last_id"]:
            raise LlmrecError(f"tokenizer {where}: SID token ids {int(ids.min())}..{int(ids.max())} differ from "
                              f"the recorded range {rec['first_id']}..{rec['last_id']}; reload the saved model.")
    return rec


# ---- embeddings ----------------------------------------------------------------------------------
def resize_for_tokens(model, tokenizer) -> int:
    """Make the embedding table (and an untied head) cover every tokenizer id; returns the row count.

    Tables that are already larger than the tokenizer (Qwen2.5: 151,936 rows) are kept as they are:
    the new ids fall on existing rows, which `init_sid_rows` then overwrites.
    """
    rows = model.get_input_embeddings().weight.shape[0]
    need = len(tokenizer)
    if need > rows:
        model.resize_token_embeddings(need, mean_resizing=False)
        rows = need
    out = model.get_output_embeddings()
    if out is not None and out.weight.shape[0] < rows:  # pragma: no cover - defensive
        raise LlmrecError(f"output head has {out.weight.shape[0]} rows < input table {rows}")
    return rows


def _is_tied(model) -> bool:
    out = model.get_output_embeddings()
    return out is None or out.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()


def _item_text(item: Item) -> str:
    return item.title or item.brand or " ".join(item.categories) or item.description[:200]


def _title_vectors(weight: torch.Tensor, tokenizer, texts: list[str], batch: int = 256) -> torch.Tensor:
    """Mean of `weight` rows over each text's tokens (float32, [len(texts), dim])."""
    vecs = []
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i:i + batch], add_special_tokens=False)["input_ids"]
        for ids in enc:
            ids = [t for t in ids if t < weight.shape[0]] or [0]
            vecs.append(weight[torch.as_tensor(ids, dtype=torch.long)].float().mean(0))
    return torch.stack(vecs)


def _spread(rows: torch.Tensor) -> float:
    """Mean distance of the rows from their mean."""
    return float((rows - rows.mean(0)).norm(dim=1).mean())


def _spread_like_base(vals: dict[int, torch.Tensor], table, base: torch.Tensor, mu: torch.Tensor) -> None:
    """Per SID level, move the semantic rows to the base rows' mean and scale their spread to the
    base rows' (one factor per level, so their geometry is kept). A mean over hundreds of token
    embeddings is close to the mean of all of them: unscaled, the rows of one level lay about ten
    times closer together than two ordinary tokens, and a model trained from scratch hardly told its
    SIDs apart (measured: README.md, "Short budgets"). Pretrained models keep the plain means: their
    first-step SID loss is lowest with them."""
    target = _spread(base)
    for lvl in range(table.shape[0]):
        ids = [int(t) for t in table[lvl].tolist() if t >= 0 and int(t) in vals]
        if len(ids) < 2:
            continue
        rows = torch.stack([vals[t] for t in ids])
        scale = target / max(_spread(rows), 1e-12)
        rows = mu + (rows - rows.mean(0)) * scale
        for t, r in zip(ids, rows):
            vals[t] = r


def _collaborative_parts(sid_map: SidMap, sequences: Mapping[str, Sequence[str]], dim: int,
                         gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Per item: its collaborative vector (PPMI-SVD of the training sequences, what `source:
    collaborative` SIDs are built from), mapped into the model's width by a seeded orthonormal
    projection (so its geometry is kept), centred and scaled to unit mean distance from the centre."""
    from llmrec.sid.vectors import collaborative_vectors

    ids = list(sid_map.item_ids)
    X = torch.from_numpy(collaborative_vectors(sequences, ids, dim=min(64, dim))).float()
    q, _ = torch.linalg.qr(torch.randn(dim, X.shape[1], generator=gen))
    Y = X @ q.T
    Y = (Y - Y.mean(0)) / max(_spread(Y), 1e-12)
    return dict(zip(ids, Y))


def _item_parts(titles: dict[str, torch.Tensor], collab: dict[str, torch.Tensor] | None,
                share: float) -> dict[str, torch.Tensor]:
    """One vector per item for the semantic means: its title vector, or, with a collaborative share,
    sqrt(1 - share) of the title's deviation from the titles' centre plus sqrt(share) of the
    collaborative one (each at the titles' spread, so the mix keeps the title vectors' scale).
    Items without text in a titled catalogue take the collaborative part alone."""
    if collab is None or not titles:
        return titles
    rows = torch.stack(list(titles.values()))
    centre, scale = rows.mean(0), _spread(rows)
    out = {}
    for item_id, c in collab.items():
        t = titles.get(item_id)
        if t is None:
            out[item_id] = centre + scale * c
        else:
            out[item_id] = centre + (1.0 - share) ** 0.5 * (t - centre) + share ** 0.5 * scale * c
    return out


@torch.no_grad()
def init_sid_rows(model, tokenizer, sid_map: SidMap, *, mode: str = "semantic",
                  items: dict[str, Item] | None = None, base_vocab_size: int | None = None,
                  seed: int = 0, noise_scale: float = 0.01, spread: bool = False,
                  sequences: Mapping[str, Sequence[str]] | None = None,
                  collaborative: float = 0.0) -> dict[str, Any]:
    """Initialise the embedding (and untied output) rows of every SID token.

    - 'semantic': token (level l, code c) = mean over items with code c at level l of the mean base
      input embedding of the item's title tokens (title tokenised with the base tokenizer); for an
      untied head the output row is the same mean taken over output rows. With `spread` each level's
      rows are then centred on the base rows' mean and spread like them (`_spread_like_base`): for
      a model trained from scratch, whose base rows are random. Codes no item uses fall back to 'mean'.
      With `collaborative` > 0 (and the training `sequences`) each item's title vector mixes in
      that share of a collaborative one (`_item_parts`): items that follow one another start close,
      which next-item prediction needs and titles do not say. A catalogue without any text still
      falls back to 'mean': started from collaborative vectors alone, the tiny model ranked worse
      after 30 minutes on amazon18_instruments_notext (README.md, "Collaborative start").
    - 'mean': mean of the base rows plus Gaussian noise (std = noise_scale * per-dim std of the rows).
    - 'random': Gaussian with the base rows' per-dim std.

    `base_vocab_size`: rows [0, base_vocab_size) are the pretrained vocabulary (defaults to the
    smallest SID token id). Returns a small report (mode used, codes initialised per mode).
    """
    if mode not in INIT_MODES:
        raise LlmrecError(f"init mode {mode!r} unknown; choose one of {', '.join(INIT_MODES)}.")
    table = sid_token_id_table(tokenizer, sid_map)
    if base_vocab_size is None:
        base_vocab_size = int(table[table >= 0].min())
    gen = torch.Generator().manual_seed(seed)
    tied = _is_tied(model)
    mats = [model.get_input_embeddings().weight]
    if not tied:
        mats.append(model.get_output_embeddings().weight)
    if not 0.0 <= collaborative <= 1.0:
        raise LlmrecError(f"collaborative SID init share must be in [0, 1], got {collaborative}")
    if collaborative > 0 and not sequences:
        raise LlmrecError("a collaborative SID init share needs the training sequences (sequences=)")
    if mode == "semantic" and not any(_item_text(it).strip() for it in (items or {}).values()):
        # sequence-only datasets (no titles): nothing to take the means of
        log.warning("semantic SID init needs item text; no item has any, using 'mean'.")
        mode = "mean"
    use_collab = mode == "semantic" and collaborative > 0
    report: dict[str, Any] = {"mode": mode, "tied": tied, "semantic_codes": 0, "fallback_codes": 0,
                              "spread": bool(spread and mode == "semantic"),
                              "collaborative": collaborative if use_collab else 0.0}
    collab = None

    for mat in mats:
        base = mat[:base_vocab_size].float()
        mu, sd = base.mean(0), base.std(0)
        vals: dict[int, torch.Tensor] = {}
        if mode == "semantic":
            ids = [i for i in sid_map.item_ids if i in (items or {}) and _item_text(items[i]).strip()]
            titles = dict(zip(ids, _title_vectors(base, tokenizer, [_item_text(items[i]) for i in ids]))) if ids else {}
            if use_collab and collab is None:  # one projection for the input and an untied output table
                collab = _collaborative_parts(sid_map, sequences, base.shape[1], gen)
            parts = _item_parts(titles, collab, collaborative)
            groups: dict[tuple[int, int], list[torch.Tensor]] = defaultdict(list)
            for item_id, vec in parts.items():
                for lvl, code in enumerate(sid_map.codes[item_id]):
                    groups[(lvl, code)].append(vec)
            for (lvl, code), vecs in groups.items():
                vals[int(table[lvl, code])] = torch.stack(vecs).mean(0)
            if spread:
                _spread_like_base(vals, table, base, mu)
        semantic_n = len(vals)
        for tid in table[table >= 0].tolist():
            if tid in vals:
                continue
            if mode == "random":
                vals[tid] = sd * torch.randn(sd.shape, generator=gen)
            else:
                vals[tid] = mu + noise_scale * sd * torch.randn(sd.shape, generator=gen)
        idx = torch.as_tensor(list(vals), dtype=torch.long)
        mat.data[idx.to(mat.device)] = torch.stack(list(vals.values())).to(mat.dtype).to(mat.device)
        report["semantic_codes"] = semantic_n
        report["fallback_codes"] = len(vals) - semantic_n
    return report


@torch.no_grad()
def sid_init_loss(model, tokenizer, sid_map: SidMap, items: dict[str, Item], n: int = 64,
                  seed: int = 0) -> float:
    """Mean next-token loss on the SID tokens of `n` item2sid examples ('<title>' -> '<a_1><b_2>...').

    A quick check of whether an embedding init helps: lower is better at step 0.
    """
    import random

    rng = random.Random(seed)
    ids = [i for i in sid_map.item_ids if i in items and items[i].title]
    ids = rng.sample(ids, min(n, len(ids)))
    losses = []
    model.eval()
    device = model.get_input_embeddings().weight.device
    for item_id in ids:
        prompt = tokenizer(f"Item: {items[item_id].title}\nSID: ", add_special_tokens=False)["input_ids"]
        sid = tokenizer(sid_map.sid_string(item_id), add_special_tokens=False)["input_ids"]
        inp = torch.as_tensor([prompt + sid], device=device)
        labels = torch.as_tensor([[-100] * len(prompt) + sid], device=device)
        losses.append(float(model(input_ids=inp, labels=labels).loss))
    return sum(losses) / max(len(losses), 1)
