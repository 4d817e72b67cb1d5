"""MovieLens-100K: u.data (user, item, rating, time), u.item (|-separated, 19 genre flags), u.user."""

from __future__ import annotations

from pathlib import Path

from llmrec.data.formats.base import DataFormat, Loaded, register_format
from llmrec.data.formats.common import need, read_text
from llmrec.data.records import DEFAULT_BEHAVIOR, Interaction, Item
from llmrec.io import LlmrecError

GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western"]


def behavior_of_rating(rating: float, mode: str | None, like_threshold: float) -> str:
    if mode is None or mode == "none":
        return DEFAULT_BEHAVIOR
    if mode == "levels":
        return f"rating_{int(rating)}"
    if mode == "binary":
        return "liked" if rating >= like_threshold else "disliked"
    raise LlmrecError(f"rating_behavior={mode!r} is not known; use None, 'levels' or 'binary'.")


def _lines(path: Path) -> list[tuple[int, str]]:
    return [(n, line) for n, line in enumerate(read_text(path, "latin-1").splitlines(), 1) if line.strip()]


def _items(item_p: Path) -> dict[str, Item]:
    items: dict[str, Item] = {}
    for lineno, line in _lines(item_p):
        f = line.split("|")
        if len(f) != 5 + len(GENRES):
            raise LlmrecError(f"{item_p}:{lineno}: expected {5 + len(GENRES)} '|'-separated fields, got "
                              f"{len(f)}; fix the record {line[:60]!r}.")
        iid = f[0].strip()
        if iid in items:
            raise LlmrecError(f"{item_p}:{lineno}: duplicate movie id {iid!r}; each id must appear once.")
        genres = [g for g, flag in zip(GENRES, f[5:]) if flag.strip() == "1"]
        feats = {k: v for k, v in (("release_date", f[2]), ("video_release_date", f[3]), ("imdb_url", f[4]))
                 if v.strip()}
        items[iid] = Item(id=iid, title=f[1].strip(), categories=genres, features=feats)
    return items


def _users(user_p: Path) -> dict[str, dict]:
    users = {}
    for lineno, line in _lines(user_p):
        f = line.split("|")
        if len(f) != 5:
            raise LlmrecError(f"{user_p}:{lineno}: expected 'user|age|gender|occupation|zip', got "
                              f"{line[:60]!r}; fix the record.")
        try:
            age = int(f[1])
        except ValueError:
            raise LlmrecError(f"{user_p}:{lineno}: age {f[1]!r} is not an integer; fix the record.") from None
        users[f[0].strip()] = {"age": age, "gender": f[2], "occupation": f[3], "zip": f[4].strip()}
    return users


def load(folder: Path, rating_behavior: str | None = None, like_threshold: float = 4.0) -> Loaded:
    if folder.is_file():
        folder = folder.parent
    data_p = need(folder / "u.data", "MovieLens ratings file u.data")
    item_p = need(folder / "u.item", "MovieLens item file u.item")
    files = [data_p, item_p]
    items = _items(item_p)
    users: dict[str, dict] = {}
    if (folder / "u.user").exists():
        files.append(folder / "u.user")
        users = _users(folder / "u.user")
    interactions = []
    for lineno, line in _lines(data_p):
        f = line.split("\t")
        try:
            if len(f) != 4:
                raise ValueError(f"{len(f)} tab-separated fields")
            rating, ts = float(f[2]), float(f[3])
        except ValueError as e:
            raise LlmrecError(f"{data_p}:{lineno}: expected 'user<TAB>item<TAB>rating<TAB>unix_time' ({e}); "
                              f"fix the record {line[:60]!r}.") from None
        interactions.append(Interaction(user=f[0].strip(), item=f[1].strip(), timestamp=ts, position=lineno,
                                        rating=rating, behavior=behavior_of_rating(rating, rating_behavior, like_threshold)))
    return Loaded(items, interactions, files, "movielens", users=users)


def detect(path: Path) -> bool:
    return (path / "u.data").exists() if path.is_dir() else path.name in ("u.data", "u.item")


FORMAT = register_format(DataFormat("movielens", detect, load, options={"rating_behavior": None,
                                                                        "like_threshold": 4.0},
                                    priority=10, description="MovieLens-100K u.data + u.item (+ u.user)"))
