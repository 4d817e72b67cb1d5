"""GRPO rewards as plain callables (TRL's reward-function signature), computed from completion ids.

Every reward reads the item from `completion_ids` (never from decoded text: TRL decodes with
skip_special_tokens=True). Completions of one prompt arrive as a consecutive group of
`group_size`, in rollout order (beam rank for beam rollouts). Dataset columns arrive as kwargs:
`target` (item id) and, for history-aware rewards, `history` (list of item ids).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmrec.baselines.sasrec import SASRec, cached_sasrec
from llmrec.io import LlmrecError
from llmrec.registry import Registry
from llmrec.sid.sidmap import SidMap

RewardFn = Callable[..., list[float]]


class CompletionItems:
    """Maps completion token ids to catalogue item ids through the SidMap (None = invalid)."""

    def __init__(self, sid_map: SidMap, token_to_level_code: dict[int, tuple[int, int]],
                 stop_ids: Sequence[int] = ()):
        self.sid_map = sid_map
        self.token_to_level_code = token_to_level_code
        self.stop_ids = {int(i) for i in stop_ids}

    @classmethod
    def from_tokenizer(cls, tokenizer, sid_map: SidMap) -> CompletionItems:
        table = {}
        for tok in sid_map.all_tokens():
            tid = tokenizer.convert_tokens_to_ids(tok)
            if tid is None or tid == tokenizer.unk_token_id:
                raise ValueError(f"tokenizer lacks SID token {tok}; add the SidMap's tokens first")
            table[int(tid)] = sid_map.parse_token(tok)
        stops = [i for i in (tokenizer.eos_token_id, tokenizer.pad_token_id) if i is not None]
        im_end = tokenizer.convert_tokens_to_ids("<|im_end|>")
        if isinstance(im_end, int) and im_end != tokenizer.unk_token_id:
            stops.append(im_end)
        return cls(sid_map, table, stops)

    def item(self, ids: Sequence[int]) -> str | None:
        codes = []
        for tid in ids:
            tid = int(tid)
            if tid in self.stop_ids:
                break
            lc = self.token_to_level_code.get(tid)
            if lc is None or lc[0] != len(codes):
                return None
            codes.append(lc[1])
        return self.sid_map.item_for_codes(codes) if codes else None

    def items(self, completion_ids: Sequence[Sequence[int]]) -> list[str | None]:
        return [self.item(ids) for ids in completion_ids]


def _named(fn: RewardFn, name: str) -> RewardFn:
    fn.__name__ = name  # TRL logs rewards/<__name__>/mean
    return fn


def rule_reward(decoder: CompletionItems) -> RewardFn:
    """1 for the exact target item, else 0."""

    def reward(completion_ids, target, **_: Any) -> list[float]:
        return [1.0 if it is not None and it == str(t) else 0.0
                for it, t in zip(decoder.items(completion_ids), target)]

    return _named(reward, "rule")


def ranking_reward(decoder: CompletionItems, group_size: int) -> RewardFn:
    """MiniOneRec-style ranking-aware reward: a hit gets 1; a wrong item is penalised by its rank
    in the group, -(1/log2(rank+2)) normalised so the penalties of a whole group sum to -1, so
    confident wrong answers (high beam rank) cost the most.

    Only groups that contain the target are scored; a group without it gets 0 everywhere. Scoring
    hit-less groups too would give every such group the same rank pattern, which after group
    normalisation pushes probability from the top beams to the lower ones: noise that flattens the
    policy when hits are rare (small models, large catalogues).
    """
    weights = np.array([1.0 / math.log2(r + 2) for r in range(group_size)])
    weights = weights / weights.sum()

    def reward(completion_ids, target, beam_rank=None, **_: Any) -> list[float]:
        items = decoder.items(completion_ids)
        hits = [it is not None and it == str(t) for it, t in zip(items, target)]
        out = []
        for i, hit in enumerate(hits):
            g0 = (i // group_size) * group_size
            if not any(hits[g0:g0 + group_size]):
                out.append(0.0)
                continue
            rank = int(beam_rank[i]) if beam_rank is not None else i % group_size
            out.append(1.0 if hit else -float(weights[min(rank, group_size - 1)]))
        return out

    return _named(reward, "ranking")


def semantic_reward(decoder: CompletionItems, item_vectors: np.ndarray, item_index: dict[str, int]) -> RewardFn:
    """Cosine similarity between the generated item's embedding and the target's (0 if invalid)."""
    vecs = item_vectors / np.maximum(np.linalg.norm(item_vectors, axis=1, keepdims=True), 1e-12)

    def reward(completion_ids, target, **_: Any) -> list[float]:
        out = []
        for it, t in zip(decoder.items(completion_ids), target):
            if it is None or it not in item_index or str(t) not in item_index:
                out.append(0.0)
            else:
                out.append(float(vecs[item_index[it]] @ vecs[item_index[str(t)]]))
        return out

    return _named(reward, "semantic")


def collaborative_reward(decoder: CompletionItems, score_fn: Callable[[list[list[str]]], Any],
                         item_index: dict[str, int], shape: str = "dcg") -> RewardFn:
    """How highly a collaborative model (e.g. SASRec) ranks the generated item given the history;
    0 if invalid. `score_fn(histories) -> [B, n_items]` scores; `item_index` maps item id -> column.

    shape="dcg": 1/log2(rank+2) with rank 0 for that model's top pick (the NDCG gain the item would
    earn if the collaborative ranking were the truth), so moving between its top items is worth
    more than moving between mediocre ones. shape="percentile": the share of the catalogue scored
    below the item (1.0 top, ~0.5 average); it separates good from bad items but barely tells the
    top ten from the top hundred once rewards are normalised within a group.
    """
    if shape not in ("dcg", "percentile"):
        raise ValueError(f"collaborative reward shape {shape!r}: expected dcg or percentile")

    def reward(completion_ids, history, **_: Any) -> list[float]:
        items = decoder.items(completion_ids)
        rows = [r for r, it in enumerate(items) if it is not None and it in item_index]
        out = [0.0] * len(items)
        if not rows:
            return out
        # A group's G completions share one history: score each distinct history once.
        keys = [tuple(map(str, history[r])) for r in rows]
        position = {k: i for i, k in enumerate(dict.fromkeys(keys))}
        with torch.no_grad():
            scores = torch.as_tensor(score_fn([list(k) for k in position])).float()
        row_of = torch.tensor([position[k] for k in keys])
        scores = scores[row_of]  # [n_valid, n_items]
        mine = scores.gather(1, torch.tensor([[item_index[items[r]]] for r in rows]))
        if shape == "dcg":
            values = 1.0 / torch.log2((scores > mine).sum(1).double() + 2)
        else:
            values = (scores < mine).double().mean(1)
        for r, v in zip(rows, values.tolist()):
            out[r] = v
        return out

    return _named(reward, "collaborative")


def validity_reward(decoder: CompletionItems) -> RewardFn:
    """0 for a catalogue item, -1 otherwise (a guard; constrained rollouts should never trigger it)."""

    def reward(completion_ids, **_: Any) -> list[float]:
        return [0.0 if it is not None else -1.0 for it in decoder.items(completion_ids)]

    return _named(reward, "valid")


def repeat_reward(decoder: CompletionItems) -> RewardFn:
    """-1 for an item already in the prompt's history, else 0. For catalogues where users never
    take the same item twice (e.g. Amazon reviews: a held-out target is never in its history), so
    the policy stops spending its top slots on items the user already has. Leave it off where
    repeat consumption is normal (groceries, music)."""

    def reward(completion_ids, history, **_: Any) -> list[float]:
        return [-1.0 if it is not None and it in {str(h) for h in hist} else 0.0
                for it, hist in zip(decoder.items(completion_ids), history)]

    return _named(reward, "repeat")


@dataclass
class RewardContext:
    """What a reward factory may need: the completion decoder, the GRPO settings and the run."""

    decoder: CompletionItems
    settings: Any  # train.config.GRPOSettings
    run_dir: Path
    sid_map: SidMap
    prepared: Any  # data.store.PreparedData


# name -> factory(ctx) -> reward function; a recipe may also name package.module:factory.
REWARDS: Registry[Callable[[RewardContext], RewardFn]] = Registry("GRPO reward")
REWARDS.add("rule", lambda ctx: rule_reward(ctx.decoder))
REWARDS.add("ranking", lambda ctx: ranking_reward(ctx.decoder, ctx.settings.num_generations))
REWARDS.add("valid", lambda ctx: validity_reward(ctx.decoder))
REWARDS.add("repeat", lambda ctx: repeat_reward(ctx.decoder))


@REWARDS.register("semantic")
def _semantic_from_run(ctx: RewardContext) -> RewardFn:
    emb_path = ctx.run_dir / "sid" / "embeddings.npy"
    if not emb_path.exists():
        raise LlmrecError(f"semantic reward needs {emb_path} (written by `llmrec sid build`)")
    order = ctx.sid_map.meta.get("item_order") or list(ctx.sid_map.codes)
    return semantic_reward(ctx.decoder, np.load(emb_path), {i: k for k, i in enumerate(order)})


@REWARDS.register("collaborative")
def _collaborative_from_run(ctx: RewardContext) -> RewardFn:
    if ctx.settings.sasrec_dir:
        sas = SASRec.load(ctx.settings.sasrec_dir)
    else:  # the run's baseline (what `llmrec eval` compares with); trained (~30 s on a CPU) if missing
        sas, _ = cached_sasrec(ctx.run_dir, ctx.prepared, any_config=True)
    return collaborative_reward(ctx.decoder, sas.score_items, sas.item_index, shape=ctx.settings.collaborative_shape)


def build_rewards(ctx: RewardContext) -> tuple[list[RewardFn], list[float]]:
    """(reward functions, weights) for the rewards of ctx.settings with a non-zero weight, in recipe
    order; TRL sums them with GRPOConfig.reward_weights."""
    funcs, weights = [], []
    for name, weight in ctx.settings.rewards.items():
        if weight:
            fn = REWARDS.get(name)(ctx)
            funcs.append(fn if getattr(fn, "__name__", "<lambda>") != "<lambda>" else _named(fn, name))
            weights.append(float(weight))
    if not funcs:
        raise LlmrecError("grpo.rewards: every weight is zero")
    return funcs, weights
