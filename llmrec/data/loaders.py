"""Loaders: every supported on-disk format -> one canonical RecDataset.

Formats: LC-Rec json (text and no-text), MovieLens-100K, Taobao UserBehavior csv, MiniOneRec csv,
and the raw Amazon Reviews 2018 json.gz files. `load_dataset` is the single entry point: it takes a
known short name (resolved under `llmrec.io.data_dir()`) or a path with an auto-detected format.
Every problem with the input is an LlmrecError naming the file, the record and the fix; every
record the loader leaves out is counted in `RecDataset.dropped`.
"""

from __future__ import annotations

import ast
import csv
import gzip
import io
import json
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from llmrec.data.records import DEFAULT_BEHAVIOR, Example, Interaction, Item, RecDataset
from llmrec.io import LlmrecError, data_dir, sha256_file

log = logging.getLogger(__name__)

# short name -> (format, path relative to data_dir())
KNOWN_DATASETS: dict[str, tuple[str, str]] = {
    "amazon18_scientific": ("lcrec", "amazon18_scientific"),
    "movielens_100k": ("movielens", "movielens_100k"),
    "amazon18_instruments_notext": ("lcrec", "amazon18_instruments_notext"),
    "amazon18_games_notext": ("lcrec", "amazon18_games_notext"),
    "taobao_tail_10k": ("taobao", "taobao_userbehavior/tail_10k/UserBehavior.csv"),
    "taobao_timeslice_72k": ("taobao", "taobao_userbehavior/timeslice_72k/UserBehavior.csv"),
    "minionerec_industrial": ("minionerec", "minionerec_industrial"),
}
FORMATS = ("lcrec", "movielens", "taobao", "minionerec", "amazon2018")
TAOBAO_BEHAVIORS = ("pv", "cart", "fav", "buy")
ML_GENRES = ["unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime",
             "Documentary", "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery",
             "Romance", "Sci-Fi", "Thriller", "War", "Western"]
COMMON_OPTIONS = {"min_user_interactions": 0, "min_item_interactions": 0, "dedupe_consecutive": False,
                  "unknown_items": "error"}


# ---- small readers with clear errors ---------------------------------------------------------
def _need(path: Path, what: str, fix: str = "check the path (or LLMREC_DATA_DIR)") -> Path:
    if not path.exists():
        raise LlmrecError(f"{what} not found: {path}; {fix}.")
    return path


def _read_text(path: Path, encoding: str = "utf-8") -> str:
    """Whole file as text; bad bytes become an error naming the byte offset."""
    _need(path, "input file")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise LlmrecError(f"{path}: not a valid gzip file ({e}); download it again.") from e
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as e:
        raise LlmrecError(f"{path}: not valid {encoding} at byte {e.start} ({raw[e.start:e.start + 8]!r}); "
                          f"re-encode the file as {encoding}.") from e


def _no_duplicate_keys(path: Path) -> Callable[[list[tuple[str, Any]]], dict]:
    def hook(pairs: list[tuple[str, Any]]) -> dict:
        out: dict = {}
        for k, v in pairs:
            if k in out:
                raise LlmrecError(f"{path}: duplicate id {k!r} (the key appears twice); "
                                  "remove one of the entries so each id is unique.")
            out[k] = v
        return out
    return hook


def _read_json(path: Path, what: str) -> Any:
    """JSON with errors naming file/line/column, and duplicate keys refused."""
    _need(path, what)
    text = _read_text(path)
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys(path))
    except json.JSONDecodeError as e:
        raise LlmrecError(f"{path}: malformed JSON at line {e.lineno} column {e.colno} ({e.msg}); "
                          "fix or re-export the file.") from e


def _expect_dict(obj: Any, path: Path, shape: str) -> dict:
    if not isinstance(obj, dict):
        raise LlmrecError(f"{path}: expected a JSON object {shape}, got {type(obj).__name__}.")
    return obj


def _file_record(path: Path) -> dict[str, Any]:
    return {"path": str(path.resolve()), "bytes": path.stat().st_size, "sha256": sha256_file(path)}


# ---- format loaders: return (items, interactions, files, extras) -----------------------------
class _Loaded:
    def __init__(self, items: dict[str, Item], interactions: list[Interaction], files: list[Path],
                 fmt: str, users: dict | None = None, presplit: dict | None = None,
                 checked_items: bool = True, dropped: dict | None = None):
        self.items, self.interactions, self.files, self.format = items, interactions, files, fmt
        self.users = users or {}
        self.presplit = presplit or {}
        self.checked_items = checked_items  # False: catalogue derived from interactions
        self.dropped = dropped or {}


def _lcrec_stem(folder: Path) -> str:
    stems = sorted(p.name[: -len(".inter.json")] for p in folder.glob("*.inter.json"))
    if not stems:
        raise LlmrecError(f"{folder}: no *.inter.json file; an LC-Rec folder holds X.inter.json plus "
                          "X.item.json (or X.item2id for sequence-only data).")
    if len(stems) > 1:
        raise LlmrecError(f"{folder}: several *.inter.json files ({', '.join(stems)}); pass the file path.")
    return stems[0]


def _load_lcrec(path: Path) -> _Loaded:
    if path.is_file():
        folder, stem = path.parent, path.name.split(".")[0]
    else:
        folder, stem = path, _lcrec_stem(path)
    inter_path = _need(folder / f"{stem}.inter.json", "LC-Rec interactions file")
    item_path, map_path = folder / f"{stem}.item.json", folder / f"{stem}.item2id"
    files = [inter_path]
    items: dict[str, Item] = {}
    if item_path.exists():
        files.append(item_path)
        meta = _expect_dict(_read_json(item_path, "LC-Rec item file"), item_path, "{item_id: {title, ...}}")
        for iid, d in meta.items():
            if not isinstance(d, dict):
                raise LlmrecError(f"{item_path}: item {iid!r} is {type(d).__name__}, expected an object "
                                  "with title/description/brand/categories.")
            cats = d.get("categories") or []
            if isinstance(cats, str):
                cats = [c.strip() for c in cats.split(",") if c.strip()]
            extra = {k: v for k, v in d.items() if k not in ("title", "description", "brand", "categories")}
            items[str(iid)] = Item(id=str(iid), title=str(d.get("title") or "").strip(),
                                   description=str(d.get("description") or "").strip(),
                                   brand=str(d.get("brand") or "").strip(), categories=list(cats),
                                   features=extra)
    elif map_path.exists():
        files.append(map_path)
        seen_asin: dict[str, str] = {}
        for lineno, line in enumerate(_read_text(map_path).splitlines(), 1):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2 or not parts[1].strip():
                raise LlmrecError(f"{map_path}:{lineno}: expected 'ASIN<TAB>item_id', got {line[:80]!r}; "
                                  "fix the line.")
            asin, iid = parts[0].strip(), parts[1].strip()
            if iid in items:
                raise LlmrecError(f"{map_path}:{lineno}: duplicate item id {iid!r}; each id must appear once.")
            if asin in seen_asin:
                raise LlmrecError(f"{map_path}:{lineno}: duplicate ASIN {asin!r} (ids {seen_asin[asin]} and "
                                  f"{iid}); each ASIN must map to one id.")
            seen_asin[asin] = iid
            items[iid] = Item(id=iid, features={"asin": asin})
    else:
        raise LlmrecError(f"{folder}: neither {item_path.name} nor {map_path.name} exists; LC-Rec data needs "
                          "one of them to define the catalogue.")
    seqs = _expect_dict(_read_json(inter_path, "LC-Rec interactions file"), inter_path,
                        "{user_id: [item_id, ...]}")
    interactions = []
    for user, seq in seqs.items():
        if not isinstance(seq, list):
            raise LlmrecError(f"{inter_path}: user {user!r}: expected a list of item ids, got "
                              f"{type(seq).__name__}; fix the record.")
        for pos, iid in enumerate(seq):
            interactions.append(Interaction(user=str(user), item=str(iid), position=pos))
    return _Loaded(items, interactions, files, "lcrec")


def _ml_rating_behavior(rating: float, mode: str | None, like_threshold: float) -> str:
    if mode is None or mode == "none":
        return DEFAULT_BEHAVIOR
    if mode == "levels":
        return f"rating_{int(rating)}"
    if mode == "binary":
        return "liked" if rating >= like_threshold else "disliked"
    raise LlmrecError(f"rating_behavior={mode!r} is not known; use None, 'levels' or 'binary'.")


def _load_movielens(folder: Path, rating_behavior: str | None = None, like_threshold: float = 4.0) -> _Loaded:
    if folder.is_file():
        folder = folder.parent
    data_p = _need(folder / "u.data", "MovieLens ratings file u.data")
    item_p = _need(folder / "u.item", "MovieLens item file u.item")
    files = [data_p, item_p]
    items: dict[str, Item] = {}
    for lineno, line in enumerate(_read_text(item_p, "latin-1").splitlines(), 1):
        if not line.strip():
            continue
        f = line.split("|")
        if len(f) != 5 + len(ML_GENRES):
            raise LlmrecError(f"{item_p}:{lineno}: expected {5 + len(ML_GENRES)} '|'-separated fields, got "
                              f"{len(f)}; fix the record {line[:60]!r}.")
        iid = f[0].strip()
        if iid in items:
            raise LlmrecError(f"{item_p}:{lineno}: duplicate movie id {iid!r}; each id must appear once.")
        genres = [g for g, flag in zip(ML_GENRES, f[5:]) if flag.strip() == "1"]
        feats = {k: v for k, v in (("release_date", f[2]), ("video_release_date", f[3]), ("imdb_url", f[4]))
                 if v.strip()}
        items[iid] = Item(id=iid, title=f[1].strip(), categories=genres, features=feats)
    users: dict[str, dict] = {}
    user_p = folder / "u.user"
    if user_p.exists():
        files.append(user_p)
        for lineno, line in enumerate(_read_text(user_p, "latin-1").splitlines(), 1):
            if not line.strip():
                continue
            f = line.split("|")
            if len(f) != 5:
                raise LlmrecError(f"{user_p}:{lineno}: expected 'user|age|gender|occupation|zip', got "
                                  f"{line[:60]!r}; fix the record.")
            try:
                age = int(f[1])
            except ValueError:
                raise LlmrecError(f"{user_p}:{lineno}: age {f[1]!r} is not an integer; fix the record.") from None
            users[f[0].strip()] = {"age": age, "gender": f[2], "occupation": f[3], "zip": f[4].strip()}
    interactions = []
    for lineno, line in enumerate(_read_text(data_p, "latin-1").splitlines(), 1):
        if not line.strip():
            continue
        f = line.split("\t")
        try:
            if len(f) != 4:
                raise ValueError(f"{len(f)} tab-separated fields")
            rating, ts = float(f[2]), float(f[3])
        except ValueError as e:
            raise LlmrecError(f"{data_p}:{lineno}: expected 'user<TAB>item<TAB>rating<TAB>unix_time' ({e}); "
                              f"fix the record {line[:60]!r}.") from None
        interactions.append(Interaction(user=f[0].strip(), item=f[1].strip(), timestamp=ts, position=lineno,
                                        rating=rating,
                                        behavior=_ml_rating_behavior(rating, rating_behavior, like_threshold)))
    return _Loaded(items, interactions, files, "movielens", users=users)


def _load_taobao(path: Path) -> _Loaded:
    if path.is_dir():
        path = path / "UserBehavior.csv"
    _need(path, "Taobao UserBehavior csv")
    interactions = []
    item_cats: dict[str, set[str]] = defaultdict(set)
    text = _read_text(path)
    for lineno, row in enumerate(csv.reader(io.StringIO(text)), 1):
        if not row:
            continue
        if lineno == 1 and row[0].strip().lower() in ("user_id", "user"):
            continue  # tolerate a header line
        if len(row) != 5:
            raise LlmrecError(f"{path}:{lineno}: expected 5 fields user_id,item_id,category_id,behavior,"
                              f"timestamp, got {len(row)}; fix the record {','.join(row)[:80]!r}.")
        user, item, cat, beh, ts = (x.strip() for x in row)
        if beh not in TAOBAO_BEHAVIORS:
            raise LlmrecError(f"{path}:{lineno}: behavior {beh!r} is not one of {', '.join(TAOBAO_BEHAVIORS)}; "
                              "fix the record.")
        try:
            t = float(ts)
        except ValueError:
            raise LlmrecError(f"{path}:{lineno}: timestamp {ts!r} is not a unix time; fix the record.") from None
        item_cats[item].add(cat)
        interactions.append(Interaction(user=user, item=item, timestamp=t, position=lineno, behavior=beh))
    items = {iid: Item(id=iid, categories=sorted(cats),
                       features={"category_id": min(cats) if len(cats) == 1 else sorted(cats)})
             for iid, cats in item_cats.items()}
    return _Loaded(items, interactions, [path], "taobao", checked_items=False)


def _literal_list(text: str, where: str) -> list:
    try:
        val = ast.literal_eval(text)
    except (ValueError, SyntaxError) as e:
        raise LlmrecError(f"{where}: not a python list literal ({e.__class__.__name__}: {text[:60]!r}); "
                          "fix the record.") from None
    if not isinstance(val, (list, tuple)):
        raise LlmrecError(f"{where}: expected a list, got {type(val).__name__}; fix the record.")
    return list(val)


MINIONEREC_COLUMNS = ["user_id", "history_item_title", "item_title", "history_item_id", "item_id",
                      "history_item_sid", "item_sid"]


def _read_minionerec_csv(path: Path) -> list[Example]:
    rows = []
    reader = csv.DictReader(io.StringIO(_read_text(path)))
    missing = [c for c in ("user_id", "history_item_id", "item_id") if c not in (reader.fieldnames or [])]
    if missing:
        raise LlmrecError(f"{path}: missing column(s) {', '.join(missing)}; a MiniOneRec csv has the header "
                          f"{','.join(MINIONEREC_COLUMNS)}.")
    for lineno, r in enumerate(reader, 2):
        if None in r or any(r.get(c) is None for c in ("user_id", "history_item_id", "item_id")):
            raise LlmrecError(f"{path}:{lineno}: wrong number of fields; fix the record.")
        hist = [str(int(x)) if isinstance(x, (int, float)) else str(x)
                for x in _literal_list(r["history_item_id"], f"{path}:{lineno} history_item_id")]
        rows.append(Example(user=r["user_id"].strip(), history=hist, target=r["item_id"].strip()))
    return rows


def _minionerec_files(path: Path) -> tuple[Path, dict[str, Path]]:
    """(root folder, {split: csv}) for a MiniOneRec folder or one of its csv files."""
    if path.is_file():
        root = path.parent.parent if path.parent.name in ("train", "valid", "test") else path.parent
    else:
        root = path
    csvs = {s: sorted((root / s).glob("*.csv")) for s in ("train", "valid", "test") if (root / s).is_dir()}
    if path.is_file() and not csvs:
        csvs = {"test": [path]}
    out = {}
    for s, found in csvs.items():
        if len(found) > 1:
            raise LlmrecError(f"{root / s}: several csv files ({', '.join(p.name for p in found)}); keep one.")
        if found:
            out[s] = found[0]
    if not out:
        raise LlmrecError(f"{root}: no MiniOneRec csv under train/ valid/ test/; check the path.")
    return root, out


def _load_minionerec(path: Path) -> _Loaded:
    root, csvs = _minionerec_files(path)
    files = list(csvs.values())
    items: dict[str, Item] = {}
    item_json = sorted((root / "index").glob("*.item.json")) if (root / "index").is_dir() else []
    if item_json:
        files.append(item_json[0])
        meta = _expect_dict(_read_json(item_json[0], "MiniOneRec item file"), item_json[0], "{item_id: {...}}")
        for iid, d in meta.items():
            desc = d.get("description") or ""
            if isinstance(desc, str) and desc.startswith("["):
                try:
                    desc = " ".join(str(x) for x in ast.literal_eval(desc))
                except (ValueError, SyntaxError):
                    pass
            cats = d.get("categories") or []
            if isinstance(cats, str):
                cats = [c.strip() for c in cats.split(",") if c.strip()]
            items[str(iid)] = Item(id=str(iid), title=str(d.get("title") or "").strip(),
                                   description=str(desc).strip(), brand=str(d.get("brand") or "").strip(),
                                   categories=list(cats))
    info = sorted((root / "info").glob("*.txt")) if (root / "info").is_dir() else []
    if info:
        files.append(info[0])
        seen: set[str] = set()
        for lineno, line in enumerate(_read_text(info[0]).splitlines(), 1):
            if not line.strip():
                continue
            f = line.split("\t")
            if len(f) != 3:
                raise LlmrecError(f"{info[0]}:{lineno}: expected 'sid<TAB>title<TAB>item_id', got "
                                  f"{line[:80]!r}; fix the line.")
            sid, title, iid = f[0].strip(), f[1].strip(), f[2].strip()
            if iid in seen:
                raise LlmrecError(f"{info[0]}:{lineno}: duplicate item id {iid!r}; each id must appear once.")
            seen.add(iid)
            it = items.setdefault(iid, Item(id=iid, title=title))
            it.title = it.title or title
            it.features["minionerec_sid"] = sid
    if not items:
        raise LlmrecError(f"{root}: no catalogue found (index/*.item.json or info/*.txt); MiniOneRec data "
                          "needs one of them.")
    presplit = {s: _read_minionerec_csv(p) for s, p in csvs.items()}
    # Reconstruct each user's known sequence: histories overlap, so merge them in row order.
    seqs: dict[str, list[str]] = {}
    for s in ("train", "valid", "test"):
        for ex in presplit.get(s, []):
            seq = seqs.setdefault(ex.user, [])
            h = ex.history
            overlap = 0
            for o in range(min(len(seq), len(h)), 0, -1):
                if seq[-o:] == h[:o]:
                    overlap = o
                    break
            seq.extend(h[overlap:])
            seq.append(ex.target)
    interactions = [Interaction(user=u, item=i, position=p) for u, seq in seqs.items() for p, i in enumerate(seq)]
    return _Loaded(items, interactions, files, "minionerec", presplit=presplit)


def _iter_json_lines(path: Path) -> Iterable[tuple[int, dict]]:
    """Amazon 2018 files: one JSON object per line (older dumps: python dict literals)."""
    for lineno, line in enumerate(_read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError:
            try:
                obj = ast.literal_eval(line)
            except (ValueError, SyntaxError):
                raise LlmrecError(f"{path}:{lineno}: malformed JSON line; download the file again.") from None
        if not isinstance(obj, dict):
            raise LlmrecError(f"{path}:{lineno}: expected an object per line; download the file again.")
        yield lineno, obj


def _load_amazon2018(path: Path) -> _Loaded:
    """Raw Amazon Reviews 2018: a folder with `<Cat>_5.json.gz` (reviews) and `meta_<Cat>.json.gz`."""
    reviews = sorted(p for p in path.glob("*_5.json*")) if path.is_dir() else [path]
    if len(reviews) != 1:
        raise LlmrecError(f"{path}: expected one '<Category>_5.json.gz' reviews file, found {len(reviews)}.")
    rev = reviews[0]
    cat = rev.name.split("_5.json")[0]
    meta_p = rev.parent / rev.name.replace(f"{cat}_5.json", f"meta_{cat}.json")
    _need(meta_p, "Amazon 2018 meta file", f"download it with llmrec.data.download.download_amazon2018('{cat}')")
    items: dict[str, Item] = {}
    dup_meta = 0
    for lineno, d in _iter_json_lines(meta_p):
        asin = str(d.get("asin") or "").strip()
        if not asin:
            raise LlmrecError(f"{meta_p}:{lineno}: record has no 'asin'; download the file again.")
        if asin in items:
            dup_meta += 1  # the public meta dumps repeat some products; keep the first record
            continue
        desc = d.get("description") or ""
        if isinstance(desc, list):
            desc = " ".join(str(x) for x in desc)
        cats = d.get("category") or d.get("categories") or []
        if cats and isinstance(cats[0], list):
            cats = cats[0]
        items[asin] = Item(id=asin, title=str(d.get("title") or "").strip(), description=str(desc).strip(),
                           brand=str(d.get("brand") or "").strip(), categories=[str(c) for c in cats],
                           features={"asin": asin})
    interactions = []
    for lineno, d in _iter_json_lines(rev):
        try:
            user, asin, ts = str(d["reviewerID"]), str(d["asin"]), float(d["unixReviewTime"])
        except (KeyError, TypeError, ValueError) as e:
            raise LlmrecError(f"{rev}:{lineno}: review lacks a valid {e}; download the file again.") from None
        rating = d.get("overall")
        interactions.append(Interaction(user=user, item=asin, timestamp=ts, position=lineno,
                                        rating=float(rating) if rating is not None else None))
    dropped = {"duplicate_meta_records": dup_meta} if dup_meta else {}
    return _Loaded(items, interactions, [rev, meta_p], "amazon2018", dropped=dropped)


_LOADERS: dict[str, tuple[Callable[..., _Loaded], dict[str, Any]]] = {
    "lcrec": (_load_lcrec, {}),
    "movielens": (_load_movielens, {"rating_behavior": None, "like_threshold": 4.0}),
    "taobao": (_load_taobao, {}),
    "minionerec": (_load_minionerec, {}),
    "amazon2018": (_load_amazon2018, {}),
}


# ---- format detection --------------------------------------------------------------------------
def detect_format(path: Path) -> str:
    """Guess the format of a file or folder from its names and first line."""
    if path.is_dir():
        if (path / "u.data").exists():
            return "movielens"
        if list(path.glob("*.inter.json")):
            return "lcrec"
        if any((path / s).is_dir() for s in ("valid", "test")) or (path / "info").is_dir():
            return "minionerec"
        if (path / "UserBehavior.csv").exists():
            return "taobao"
        if list(path.glob("*_5.json*")):
            return "amazon2018"
        raise LlmrecError(f"{path}: cannot tell the dataset format from the folder contents; pass "
                          f"format= one of {', '.join(FORMATS)}.")
    name = path.name
    if name.endswith((".inter.json", ".item.json")):
        return "lcrec"
    if name in ("u.data", "u.item"):
        return "movielens"
    if "_5.json" in name:
        return "amazon2018"
    if name.endswith(".csv"):
        with open(path, "rb") as f:
            first = f.readline().decode("utf-8", "replace")
        return "minionerec" if first.startswith("user_id,") and "item_id" in first else "taobao"
    raise LlmrecError(f"{path}: cannot tell the dataset format from the file name; pass format= one of "
                      f"{', '.join(FORMATS)}.")


def resolve_dataset(name_or_path: str, format: str | None = None) -> tuple[str, Path, str]:
    """(dataset name, path, format) for a known short name or a path."""
    if name_or_path in KNOWN_DATASETS:
        fmt, rel = KNOWN_DATASETS[name_or_path]
        path = data_dir() / rel
        if not path.exists():
            raise LlmrecError(f"dataset {name_or_path!r} expected at {path}, which does not exist; set "
                              "LLMREC_DATA_DIR to the folder holding the datasets (or pass a path).")
        return name_or_path, path, format or fmt
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise LlmrecError(f"{name_or_path!r} is neither a known dataset ({', '.join(KNOWN_DATASETS)}) nor an "
                          "existing file or folder; check the spelling or the path.")
    fmt = format or detect_format(path)
    if fmt not in FORMATS:
        raise LlmrecError(f"format={fmt!r} is not supported; use one of {', '.join(FORMATS)}.")
    name = (path.parent.name if path.is_file() else path.name) or "dataset"
    return name, path, fmt


# ---- cleaning: unknown items, dedupe, k-core ---------------------------------------------------
def _add(dropped: dict[str, int], key: str, n: int) -> None:
    if n:
        dropped[key] = dropped.get(key, 0) + n


def _check_unknown_items(loaded: _Loaded, mode: str, dropped: dict[str, int]) -> list[Interaction]:
    if mode not in ("error", "drop"):
        raise LlmrecError(f"unknown_items={mode!r}: use 'error' or 'drop'.")
    if not loaded.checked_items:
        return loaded.interactions
    bad = [x for x in loaded.interactions if x.item not in loaded.items]
    if not bad:
        return loaded.interactions
    if mode == "error":
        x = bad[0]
        raise LlmrecError(f"{loaded.files[0]}: user {x.user!r} refers to item {x.item!r}, which is not in the "
                          f"catalogue ({len(bad)} such events); fix the data or load with "
                          "unknown_items='drop' (--unknown-items drop) to drop and count them.")
    _add(dropped, "unknown_item_events", len(bad))
    keep = set(loaded.items)
    return [x for x in loaded.interactions if x.item in keep]


def _dedupe_consecutive(inter: list[Interaction], dropped: dict[str, int]) -> list[Interaction]:
    by_user: dict[str, list[Interaction]] = defaultdict(list)
    for x in inter:
        by_user[x.user].append(x)
    out, n = [], 0
    for seq in by_user.values():
        seq.sort(key=lambda x: (x.timestamp if x.timestamp is not None else 0.0, x.position))
        prev = None
        for x in seq:
            if prev is not None and (x.item, x.behavior) == (prev.item, prev.behavior):
                n += 1
                continue
            out.append(x)
            prev = x
    _add(dropped, "consecutive_repeat_events", n)
    return out


def _k_core(inter: list[Interaction], min_user: int, min_item: int, dropped: dict[str, int]) -> list[Interaction]:
    """Drop users (and items) below the minimum count, repeating until stable when both are set."""
    while True:
        changed = False
        for field, minimum in (("user", min_user), ("item", min_item)):
            if minimum <= 1:
                continue
            counts = Counter(getattr(x, field) for x in inter)
            low = {k for k, c in counts.items() if c < minimum}
            if low:
                _add(dropped, f"{field}s_below_min_interactions", len(low))
                before = len(inter)
                inter = [x for x in inter if getattr(x, field) not in low]
                _add(dropped, f"events_of_{field}s_below_min_interactions", before - len(inter))
                changed = True
        if not changed or min_item <= 1:
            return inter


# ---- entry point -------------------------------------------------------------------------------
def load_dataset(name_or_path: str | Path, format: str | None = None, **options: Any) -> RecDataset:
    """Load a known dataset name or a path into a RecDataset.

    Options (all formats): min_user_interactions (0), min_item_interactions (0, iterated k-core with
    the user minimum), dedupe_consecutive (False), unknown_items ('error' | 'drop').
    MovieLens: rating_behavior (None | 'levels' -> rating_1..rating_5 | 'binary' -> liked/disliked),
    like_threshold (4.0).
    """
    name, path, fmt = resolve_dataset(str(name_or_path), format)
    loader, fmt_defaults = _LOADERS[fmt]
    allowed = {**COMMON_OPTIONS, **fmt_defaults}
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise LlmrecError(f"unknown loader option(s) {', '.join(unknown)} for format {fmt!r}; valid options: "
                          f"{', '.join(sorted(allowed))}.")
    opts = {**allowed, **options}
    loaded = loader(path, **{k: opts[k] for k in fmt_defaults})
    dropped: dict[str, int] = dict(loaded.dropped)
    inter = _check_unknown_items(loaded, opts["unknown_items"], dropped)
    if opts["dedupe_consecutive"]:
        inter = _dedupe_consecutive(inter, dropped)
    inter = _k_core(inter, int(opts["min_user_interactions"]), int(opts["min_item_interactions"]), dropped)
    items = loaded.items
    if int(opts["min_item_interactions"]) > 1:
        used = {x.item for x in inter}
        items = {k: v for k, v in items.items() if k in used}
    if not inter:
        raise LlmrecError(f"{path}: no interactions left after loading and filtering (dropped: {dropped}); "
                          "lower min_user_interactions / min_item_interactions.")
    has_text = any(it.title for it in items.values())
    if has_text:
        _add(dropped, "items_with_empty_title_kept_id_as_name", sum(1 for it in items.values() if not it.title))
    users = loaded.users
    if users:
        active = {x.user for x in inter}
        users = {u: a for u, a in users.items() if u in active}
    presplit = loaded.presplit
    if presplit and (dropped.get("users_below_min_interactions") or dropped.get("unknown_item_events")):
        keep_u, keep_i = {x.user for x in inter}, set(items)
        new = {}
        for s, exs in presplit.items():
            ok = [e for e in exs if e.user in keep_u and e.target in keep_i and all(h in keep_i for h in e.history)]
            _add(dropped, f"{s}_rows_filtered", len(exs) - len(ok))
            new[s] = ok
        presplit = new
    source = {"format": fmt, "name": name, "path": str(path.resolve()),
              "files": [_file_record(p) for p in loaded.files], "options": opts}
    ds = RecDataset(name=name, items=items, interactions=inter, source=source, dropped=dropped,
                    users=users, presplit=presplit)
    if dropped:
        log.info("%s: dropped/reported %s", name, dropped)
    return ds


def dataset_summary(ds: RecDataset) -> dict[str, Any]:
    """Counts, sequence-length stats, behaviours and drops, for printing."""
    seqs = Counter(x.user for x in ds.interactions)
    lens = sorted(seqs.values())
    n = len(lens)
    return {**ds.counts(), "behaviors": dict(Counter(x.behavior for x in ds.interactions)),
            "seq_len": {"min": lens[0], "median": lens[n // 2], "mean": round(sum(lens) / n, 2), "max": lens[-1]}
            if n else {}, "dropped": ds.dropped}
