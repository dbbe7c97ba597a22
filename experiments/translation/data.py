"""Text in and out for the translation experiment: finding (or downloading) the parallel text, the shared subword
tokeniser, length-bucketed batches counted in tokens, and BLEU.

Multi30k task 1 (Elliott et al. 2016) is read from ``--data-dir`` / ``$PBT_MULTI30K_DIR``; without either it is
downloaded once from its GitHub repository into the cache. WMT14 En→De (the ``paper`` profile) is never downloaded: it
is read from ``--data-dir`` / ``$PBT_WMT14_DIR``, a folder holding ``{split}.{en,de}`` text files.
"""

from __future__ import annotations

import gzip
import hashlib
import itertools
import os
import urllib.request
from pathlib import Path

import sacrebleu
import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

from experiments.common import cache_lock, cache_root, write_atomic
from pbt.space import ConfigError

PAD, BOS, EOS = 0, 1, 2
SPECIAL_TOKENS = ["<pad>", "<s>", "</s>"]

MULTI30K_URL = (
    "https://raw.githubusercontent.com/multi30k/dataset/a3d2e0d26b56f3846f66a952536ffed4e401d05a/"
    "data/task1/raw/{name}.gz"
)
MULTI30K_SHA256 = {  # of the decompressed files at the pinned commit
    "train.en": "460a15fbd157e34a7a9957ee388c1ca247fe47af3ef25fb50442af6c274e0fc6",
    "train.de": "2c2b73fd2b548fbcde3a875e0a78d6ee94d498bfdee6bd3eae3945779e9ddf72",
    "val.en": "1f2a23d992769b5b3d209b0a10dd0b77c08cceb1f20dfb97ed0aafa49d107227",
    "val.de": "660e09eb7e1da2f856ea13ee5ad3cf6d36b3d5b0b733c857e94c5747a3dfc660",
    "test_2016_flickr.en": "399a4382932c1aadd3ceb9bef1008d388a64c76d4ae4e9d4728c6f4301cac182",
    "test_2016_flickr.de": "4be6b5b3236b79c25475c6bb829800a7ce559e9ba7a1f6c2394fe4d40be46d16",
    "test_2017_flickr.en": "ce1450ddc5ab0834502579d77a170849952e15a2938b34cc503bdc25ebb4fb98",
    "test_2017_flickr.de": "c3078bc3b36808bf9d20eb2347ed6137016179ef59ec0d2b9b8ecc3fb2880081",
    "test_2017_mscoco.en": "43051fdfa86fd5395182e718a94ca67b1b227b9f7c79596ff0f6b813216981d2",
    "test_2017_mscoco.de": "58277df3c75f92f7145a11b910b553d1cf82c439249d4dc237c899609eafac22",
    "test_2018_flickr.en": "4e585c2dd525911a6ea7730e9d0b516239af3f1b1ffae6a2130223cfb639f25e",
    "test_2018_flickr.de": "39fcc8b3331d76fb42d648d019c6898b0d5e58baac87bc2a0bb93f44ec8db207",
}
# Which file plays which part. newstest2012 is the paper's validation set; newstest2014 is the usual test set.
SPLITS = {
    "multi30k": {
        "train": "train",
        "val": "val",
        "test": ("test_2016_flickr", "test_2017_flickr", "test_2017_mscoco", "test_2018_flickr"),
    },
    "wmt14": {"train": "train", "val": "newstest2012", "test": ("newstest2014",)},
}
ENV_VARS = {"multi30k": "PBT_MULTI30K_DIR", "wmt14": "PBT_WMT14_DIR"}


def default_cache_dir() -> Path:
    """The translation cache folder (``experiments.common.cache_root``)."""
    return cache_root("translation")


def split_files(dataset: str) -> list[str]:
    names = SPLITS[dataset]
    return [f"{split}.{lang}" for split in (names["train"], names["val"], *names["test"]) for lang in ("en", "de")]


def resolve_data_dir(dataset: str, data_dir: str, cache_dir: Path) -> Path:
    """The folder holding ``dataset``'s text files: ``data_dir``, else its environment variable, else (Multi30k only)
    a download into ``cache_dir``. Raises a one-line ``ConfigError`` naming the setting and the variable otherwise."""
    env = ENV_VARS[dataset]
    value = data_dir or os.environ.get(env, "")
    if value:
        root = Path(value).expanduser()
        missing = [name for name in split_files(dataset) if not (root / name).is_file()]
        if missing:
            raise ConfigError(
                f"{dataset} data not found in {root} (missing {', '.join(missing[:3])}); point "
                f"⟨data_dir⟩ (or ${env}) at a folder holding {{split}}.{{en,de}} text files",
                path=root,
                options=["data_dir"],
            )
        return root
    if dataset == "wmt14":
        raise ConfigError(
            f"WMT14 En-De is not downloaded automatically; pass ⟨data_dir⟩ (or set ${env}) to a folder "
            f"holding {', '.join(split_files(dataset))}",
            options=["data_dir"],
        )
    return download_multi30k(cache_dir / "multi30k")


def download_multi30k(root: Path) -> Path:
    """Fetch Multi30k task 1 raw text from its GitHub repository (pinned commit) once, checking every file's SHA-256."""
    root.mkdir(parents=True, exist_ok=True)
    for name, sha in MULTI30K_SHA256.items():
        target = root / name
        if target.is_file():
            continue
        url = MULTI30K_URL.format(name=name)
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                text = gzip.decompress(response.read())
        except OSError as exc:
            raise ConfigError(
                f"could not download Multi30k ({url}: {exc}); when offline pass ⟨data_dir⟩ (or set "
                f"$PBT_MULTI30K_DIR) to a folder holding {{split}}.{{en,de}} text files",
                path=target,
                options=["data_dir"],
            ) from exc
        if hashlib.sha256(text).hexdigest() != sha:
            raise ConfigError(
                f"downloaded {name} has an unexpected SHA-256; pass ⟨data_dir⟩ to a checked copy",
                path=target,
                options=["data_dir"],
            )
        write_atomic(target, lambda tmp, data=text: tmp.write_bytes(data))
    return root


def read_lines(path: Path, limit: int = 0) -> list[str]:
    """One sentence per line, without the line break; the first ``limit`` lines when ``limit`` > 0."""
    with open(path, encoding="utf-8") as f:
        lines = [line.rstrip("\n") for line in f]
    return lines[:limit] if limit > 0 else lines


def read_pairs(root: Path, split: str, limit: int = 0) -> tuple[list[str], list[str]]:
    """(English sources, German references) of one split, line-aligned."""
    src, tgt = read_lines(root / f"{split}.en", limit), read_lines(root / f"{split}.de", limit)
    if len(src) != len(tgt):
        raise ValueError(f"{root}/{split}: {len(src)} English lines but {len(tgt)} German lines")
    return src, tgt


# -- the shared subword tokeniser -----------------------------------------------------------------------------------


def train_tokenizer(sentences: list[str], vocab_size: int) -> Tokenizer:
    """Byte-level BPE (GPT-2 style) over both languages. Byte-level means no unknown token and an exact round trip of
    any text: decoding the ids of a sentence gives the sentence back, so BLEU can score raw, detokenised output."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(sentences, trainer=trainer)
    return tokenizer


def cached_tokenizer(src: list[str], tgt: list[str], vocab_size: int, cache_dir: Path) -> Tokenizer:
    """The tokeniser trained on these exact sentences, from the cache when an identical one was trained before. The
    file name holds a hash of the text and the vocabulary size; a lock keeps two workers from training it twice."""
    digest = hashlib.sha256()
    for line in (*src, *tgt):
        digest.update(line.encode("utf-8") + b"\n")
    path = cache_dir / f"bpe-{vocab_size}-{digest.hexdigest()[:16]}.json"
    with cache_lock(cache_dir, "tokenizer"):
        if not path.is_file():
            write_atomic(path, lambda tmp: train_tokenizer(src + tgt, vocab_size).save(str(tmp)))
    return Tokenizer.from_file(str(path))


def encode(tokenizer: Tokenizer, sentences: list[str], max_len: int) -> list[list[int]]:
    """Token ids of each sentence followed by EOS, truncated to ``max_len`` ids."""
    return [ids[: max_len - 1] + [EOS] for ids in (e.ids for e in tokenizer.encode_batch(sentences))]


def decode(tokenizer: Tokenizer, ids: list[int]) -> str:
    """Text of one output: ids up to the first EOS, special tokens dropped."""
    if EOS in ids:
        ids = ids[: ids.index(EOS)]
    return tokenizer.decode([i for i in ids if i > EOS], skip_special_tokens=True)


# -- batches ----------------------------------------------------------------------------------------------------------


def make_batches(lengths: list[int], max_tokens: int) -> list[list[int]]:
    """Group example indices by length so that each batch holds at most ``max_tokens`` tokens, padding included
    (fairseq's scheme: batches are built once from the length order, and only their order is shuffled per epoch)."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    batches: list[list[int]] = []
    current: list[int] = []
    for i in order:
        if current and (len(current) + 1) * max(lengths[i], lengths[current[-1]]) > max_tokens:
            batches.append(current)
            current = []
        current.append(i)
    if current:
        batches.append(current)
    return batches


def pad(sequences: list[list[int]], bos: bool = False) -> torch.Tensor:
    """(B, T) int64 tensor of ``sequences`` right-padded with PAD, each prefixed with BOS when ``bos``."""
    prefix = [BOS] if bos else []
    width = max(len(s) for s in sequences) + len(prefix)
    return torch.tensor([prefix + s + [PAD] * (width - len(s) - len(prefix)) for s in sequences], dtype=torch.long)


# -- BLEU -----------------------------------------------------------------------------------------------------------


def bleu(hypotheses: list[str], references: list[str]) -> sacrebleu.metrics.bleu.BLEUScore:
    """sacrebleu's corpus BLEU (13a tokenisation, mixed case, exp smoothing) of raw text against raw references."""
    return sacrebleu.metrics.BLEU().corpus_score(hypotheses, [references])


def bleu_signature() -> str:
    """sacrebleu's signature of ``bleu`` (it is only known once the metric has scored something)."""
    metric = sacrebleu.metrics.BLEU()
    metric.corpus_score(["a"], [["a"]])
    return str(metric.get_signature())


def chunk_bleus(hypotheses: list[str], references: list[str], chunks: int) -> tuple[float, ...]:
    """Corpus BLEU of each of ``chunks`` fixed, contiguous slices of the set: the t-test's samples (README)."""
    n = len(references)
    bounds = [round(i * n / chunks) for i in range(chunks + 1)]
    return tuple(bleu(hypotheses[a:b], references[a:b]).score for a, b in itertools.pairwise(bounds) if b > a)
