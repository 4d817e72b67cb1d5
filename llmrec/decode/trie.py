"""SidTrie: every catalogue SID as a prefix trie held in tensors (padded CSR).

Nodes are numbered level by level (root = 0). For each node the allowed next token ids are kept
sorted in one row of `child_tok` (padded to the widest node, `child_ok` marks real entries) with the
matching child node ids in `child_node`. A leaf (complete SID) has the end-of-answer token(s) as its
only children, leading to the sink node `done`; the sink allows only end/pad tokens again so a
finished or invalid row never has an all -inf score row. All per-step queries (`step`, `walk`,
`allowed_mask`) are tensor ops over the whole batch of beams; nothing loops over beams in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

import torch

from llmrec.io import LlmrecError
from llmrec.llm.sid_softmax import SidLevelGroups
from llmrec.sid.sidmap import SidMap


def default_end_ids(tokenizer) -> list[int]:
    """The token that ends an answer: `<|im_end|>` when the vocabulary has it, else eos_token_id."""
    vocab = tokenizer.get_vocab()
    if "<|im_end|>" in vocab:
        return [int(vocab["<|im_end|>"])]
    if tokenizer.eos_token_id is None:
        raise LlmrecError("tokenizer has neither <|im_end|> nor an eos_token; pass end_ids= to SidTrie.")
    return [int(tokenizer.eos_token_id)]


class SidTrie:
    """Prefix trie over a SidMap's token ids, as tensors on one device.

    Attributes (all tensors, `n` = number of nodes including the sink `done`):
      child_tok (n, D) int64, child_node (n, D) int64, child_ok (n, D) bool: padded sorted children;
      is_leaf (n,) bool; leaf_item (n,) int64 item index or -1; depth (n,) int64; parent (n,) int64;
      item_leaf (items,) int64 leaf node of each item; leaves_under (n,) int64.
    `item_ids[i]` is the item id string of item index i.
    """

    def __init__(self, sid_map: SidMap, tokenizer, end_ids: Sequence[int] | None = None,
                 pad_id: int | None = None, device: str | torch.device = "cpu"):
        vocab = tokenizer.get_vocab()
        tok_id: dict[tuple[int, int], int] = {}
        for codes in sid_map.codes.values():
            for lvl, c in enumerate(codes):
                if (lvl, c) not in tok_id:
                    t = sid_map.token(lvl, c)
                    if t not in vocab:
                        raise LlmrecError(f"SID token {t} is not in the tokenizer vocabulary; add the SID "
                                          "tokens with llmrec.llm (load_base(..., sid_map=...)) first.")
                    tok_id[(lvl, c)] = int(vocab[t])
        sequences = {item: tuple(tok_id[(lvl, c)] for lvl, c in enumerate(codes))
                     for item, codes in sid_map.codes.items()}
        self._build(sequences, tokenizer, end_ids, pad_id, strict=True)
        self.fingerprint = sid_map.fingerprint
        # every code of every level the vocabulary holds: what the level softmax normalises over
        self.level_token_ids = [[int(vocab[t]) for t in (sid_map.token(lvl, c) for c in range(size)) if t in vocab]
                                for lvl, size in enumerate(sid_map.level_sizes)]
        if str(device) != "cpu":
            self.to(device)

    @classmethod
    def from_token_sequences(cls, sequences: Mapping[str, Sequence[int]], tokenizer,
                             end_ids: Sequence[int] | None = None, pad_id: int | None = None,
                             device: str | torch.device = "cpu") -> SidTrie:
        """A trie over arbitrary token sequences per item (e.g. tokenized titles), same queries.

        Sequences that repeat another item's, or are a prefix of another's, are left out (the first
        item keeps its sequence); `self.dropped` lists those item ids.
        """
        trie = cls.__new__(cls)
        trie._build({str(k): tuple(int(t) for t in v) for k, v in sequences.items() if len(v)}, tokenizer,
                     end_ids, pad_id, strict=False)
        trie.fingerprint = ""
        trie.level_token_ids = None  # not SID levels: always scored over the whole vocabulary
        if str(device) != "cpu":
            trie.to(device)
        return trie

    def _build(self, sequences: dict[str, tuple[int, ...]], tokenizer, end_ids: Sequence[int] | None,
               pad_id: int | None, strict: bool) -> None:
        """Fill the tensors from token sequences; `strict` raises on shared/prefix sequences."""
        self.end_ids = [int(e) for e in (end_ids if end_ids is not None else default_end_ids(tokenizer))]
        if not self.end_ids:
            raise LlmrecError("SidTrie needs at least one end token id (end_ids=[]).")
        if pad_id is None:
            pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.end_ids[0]
        self.pad_id = int(pad_id)
        if not sequences:
            raise LlmrecError("SidTrie: no item sequences to build from")
        self.dropped: list[str] = []
        if not strict:
            kept = self._prefix_free(sequences)
            self.dropped = [i for i in sequences if i not in kept]
            sequences = kept
        self.item_ids: list[str] = list(sequences)
        self.item_index = {it: i for i, it in enumerate(self.item_ids)}
        self.max_depth = max(len(c) for c in sequences.values())
        self.min_depth = min(len(c) for c in sequences.values())
        self.vocab_needed = max(max(max(c) for c in sequences.values()), max(self.end_ids), self.pad_id) + 1

        # Assign node ids level by level; children keyed by prefix tuple (built once, in Python).
        node_of: dict[tuple[int, ...], int] = {(): 0}
        parents, depths, toks = [-1], [0], [-1]
        for d in range(1, self.max_depth + 1):
            prefixes = sorted({c[:d] for c in sequences.values() if len(c) >= d})
            for p in prefixes:
                if p[:-1] not in node_of:
                    continue
                node_of[p] = len(parents)
                parents.append(node_of[p[:-1]])
                depths.append(d)
                toks.append(p[-1])
        leaf_of = {}
        for item, codes in sequences.items():
            leaf_of[item] = node_of[codes]
        n_real = len(parents)
        done = n_real
        self.done = done
        n = n_real + 1

        children: list[list[tuple[int, int]]] = [[] for _ in range(n)]
        for node in range(1, n_real):
            children[parents[node]].append((toks[node], node))
        leaf_item = [-1] * n
        for item, node in leaf_of.items():
            if children[node]:
                raise LlmrecError(f"SidMap is not prefix-free: the SID of item {item} is a prefix of another "
                                  "item's SID; rebuild the SidMap with collision handling.")
            if leaf_item[node] != -1:
                raise LlmrecError(f"SidMap has colliding SIDs (item {item} and "
                                  f"{self.item_ids[leaf_item[node]]}); rebuild with collision handling.")
            leaf_item[node] = self.item_index[item]
        for node in range(n_real):
            if leaf_item[node] >= 0:
                children[node] = [(e, done) for e in self.end_ids]
        sink_toks = sorted(set(self.end_ids) | {self.pad_id})
        children[done] = [(t, done) for t in sink_toks]
        width = max(len(c) for c in children)

        child_tok = torch.zeros(n, width, dtype=torch.long)
        child_node = torch.full((n, width), done, dtype=torch.long)
        child_ok = torch.zeros(n, width, dtype=torch.bool)
        for node, ch in enumerate(children):
            ch = sorted(ch)
            if ch:
                child_tok[node, :len(ch)] = torch.tensor([t for t, _ in ch])
                child_node[node, :len(ch)] = torch.tensor([c for _, c in ch])
                child_ok[node, :len(ch)] = True
        self.child_tok, self.child_node, self.child_ok = child_tok, child_node, child_ok
        self.leaf_item = torch.tensor(leaf_item, dtype=torch.long)
        self.is_leaf = self.leaf_item >= 0
        self.depth = torch.tensor(depths + [self.max_depth + 1], dtype=torch.long)
        self.parent = torch.tensor(parents + [-1], dtype=torch.long)
        self.item_leaf = torch.tensor([leaf_of[i] for i in self.item_ids], dtype=torch.long)
        under = torch.zeros(n, dtype=torch.long)
        for node in self.item_leaf.tolist():
            while node >= 0:
                under[node] += 1
                node = parents[node]
        self.leaves_under = under
        self.end_ids_t = torch.tensor(self.end_ids, dtype=torch.long)
        self.sid_token_ids = {item: list(sequences[item]) for item in self.item_ids}
        self.device = torch.device("cpu")

    @staticmethod
    def _prefix_free(sequences: dict[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
        kept: dict[str, tuple[int, ...]] = {}
        owner: dict[tuple[int, ...], str] = {}
        for item, seq in sequences.items():
            if seq not in owner:
                owner[seq] = item
        prefixes = {seq[:d] for seq in owner for d in range(1, len(seq))}
        for item, seq in sequences.items():
            if owner[seq] == item and seq not in prefixes:
                kept[item] = seq
        return kept

    _TENSORS = ("child_tok", "child_node", "child_ok", "leaf_item", "is_leaf", "depth", "parent",
                "item_leaf", "leaves_under", "end_ids_t")

    # ---- placement -----------------------------------------------------------------------
    def to(self, device: str | torch.device) -> SidTrie:
        """Move every tensor to `device` (in place); returns self."""
        device = torch.device(device)
        for name in self._TENSORS:
            setattr(self, name, getattr(self, name).to(device))
        self.device = device
        return self

    def level_groups(self, model) -> SidLevelGroups | None:
        """The level-softmax groups of this trie's SID levels for `model` (None for a trie over
        other token sequences); built once, kept on the trie's device."""
        if self.level_token_ids is None:
            return None
        vocab = model.get_input_embeddings().weight.shape[0]
        cached = getattr(self, "_groups", None)
        if cached is None or cached.vocab_size != vocab:
            cached = self._groups = SidLevelGroups(self.level_token_ids, vocab)
        return cached.to(self.device) if cached.group.device != self.device else cached

    @property
    def num_nodes(self) -> int:
        return int(self.child_tok.shape[0])

    def __len__(self) -> int:
        return len(self.item_ids)

    # ---- batched queries -----------------------------------------------------------------
    def step(self, nodes: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        """Child of each node by the given token; `done` where the token is not allowed."""
        match = (self.child_tok[nodes] == tokens.unsqueeze(-1)) & self.child_ok[nodes]
        idx = match.to(torch.int8).argmax(-1, keepdim=True)
        nxt = self.child_node[nodes].gather(-1, idx).squeeze(-1)
        return torch.where(match.any(-1), nxt, torch.full_like(nxt, self.done))

    def walk(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Trie node reached by each row of generated SID token ids (batch, t); loop over t only."""
        nodes = torch.zeros(token_ids.shape[0], dtype=torch.long, device=token_ids.device)
        for j in range(token_ids.shape[1]):
            nodes = self.step(nodes, token_ids[:, j])
        return nodes

    def allowed_mask(self, nodes: torch.Tensor, vocab_size: int,
                     banned: torch.Tensor | None = None) -> torch.Tensor:
        """(batch, vocab_size) bool: tokens allowed after each node.

        `banned` (batch, num_nodes) bool removes edges into those nodes (excluded items).
        """
        ok, tok = self.child_ok[nodes], self.child_tok[nodes]
        if banned is not None:
            ok = ok & ~banned.gather(1, self.child_node[nodes])
            # never leave a row without any token: fall back to the sink's end tokens
            empty = ~ok.any(-1, keepdim=True)
            ok = torch.where(empty, self.child_ok[self.done], ok)
            tok = torch.where(empty, self.child_tok[self.done], tok)
        cols = torch.where(ok, tok, torch.full_like(tok, vocab_size))
        mask = torch.zeros(nodes.shape[0], vocab_size + 1, dtype=torch.bool, device=nodes.device)
        mask.scatter_(1, cols, True)
        return mask[:, :vocab_size]

    def items_from_sequences(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Item index per row of generated ids (batch, t), or -1 when the row is not one complete SID.

        A row is valid when it walks root -> leaf and then ends (an end token, padding, or the end of
        the row). Rows that step off the trie before reaching a leaf give -1.
        """
        b = token_ids.shape[0]
        nodes = torch.zeros(b, dtype=torch.long, device=token_ids.device)
        item = torch.full((b,), -1, dtype=torch.long, device=token_ids.device)
        end = self.end_ids_t
        for j in range(token_ids.shape[1]):
            tok = token_ids[:, j]
            finishing = self.is_leaf[nodes] & (tok.unsqueeze(-1) == end).any(-1) & (item < 0)
            item = torch.where(finishing, self.leaf_item[nodes], item)
            nodes = self.step(nodes, tok)
        at_leaf = self.is_leaf[nodes] & (item < 0)
        return torch.where(at_leaf, self.leaf_item[nodes], item)

    # ---- items ---------------------------------------------------------------------------
    def items(self, indices: Iterable[int]) -> list[str | None]:
        """Item id strings for item indices (-1 -> None)."""
        return [self.item_ids[i] if i >= 0 else None for i in indices]

    def banned_nodes(self, exclude: Sequence[Iterable[str] | None]) -> torch.Tensor:
        """(rows, num_nodes) bool: per row, the leaves of excluded items and every inner node whose
        leaves are all excluded (so beam search never walks into a dead end). Unknown ids are ignored.
        """
        rows = len(exclude)
        counts = torch.zeros(rows, self.num_nodes, dtype=torch.long, device=self.device)
        r_idx, leaves = [], []
        for r, ex in enumerate(exclude):
            for it in dict.fromkeys(str(x) for x in (ex or ())):
                i = self.item_index.get(str(it))
                if i is not None:
                    r_idx.append(r)
                    leaves.append(i)
        if leaves:
            r_t = torch.tensor(r_idx, dtype=torch.long, device=self.device)
            node = self.item_leaf[torch.tensor(leaves, dtype=torch.long, device=self.device)]
            for _ in range(self.max_depth + 1):
                alive = node >= 0
                counts.index_put_((r_t[alive], node[alive]), torch.ones_like(node[alive]), accumulate=True)
                node = torch.where(alive, self.parent[node.clamp(min=0)], node)
        banned = (counts > 0) & (counts >= self.leaves_under)
        banned[:, self.done] = False
        return banned
