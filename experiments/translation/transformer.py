"""The paper's machine-translation experiment (section 4.2), scaled down: a pre-LN encoder-decoder Transformer on
Multi30k English→German, trained with Adam and label smoothing, selected on greedy-decoded validation BLEU. PBT
searches the learning rate and the three dropouts the paper names: attention, residual ("layer") and ReLU dropout.

Every ``train`` call writes the learning rate into the optimiser and the dropout rates into the model's dropout
modules, so a member that has just copied a better one and perturbed its hyperparameters trains with the new values
from its first step. The ``paper`` profile is the base Transformer on WMT14 En→De (read from a local path).
Choices the paper does not fix are listed in ``README.md`` beside this file.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from tokenizers import Tokenizer
from torch import nn

from experiments.common import load_checkpoint, pick_device, save_checkpoint, seed_everything
from experiments.translation import data
from pbt.config import PBTConfig, doc
from pbt.space import HParams, LogUniform, Uniform
from pbt.task import Evaluation

METRIC = "BLEU"
CHECKPOINT_FORMAT = "pbt-repro/translation-transformer/1"
SPACE = {
    "lr": LogUniform(3e-5, 3e-3),
    "attention_dropout": Uniform(0.0, 0.5),
    "residual_dropout": Uniform(0.0, 0.5),
    "relu_dropout": Uniform(0.0, 0.5),
}


@dataclass
class Config:
    """The experiment's fixed settings; the searched hyperparameters are in ``SPACE``."""

    dataset: Literal["multi30k", "wmt14"] = doc("Parallel corpus (wmt14: the paper profile).", default="multi30k")
    data_dir: str = doc(
        "Folder with {split}.{en,de} text files (else $PBT_MULTI30K_DIR / $PBT_WMT14_DIR; Multi30k "
        "is downloaded when neither is set).",
        default="",
    )
    cache_dir: str = doc(
        "Where downloads and trained tokenisers are cached (default: $PBT_CACHE_DIR/translation or "
        "~/.cache/pbt-repro/translation).",
        default="",
    )
    train_limit: int = doc("Use only the first N training pairs (0: all).", default=0)
    val_limit: int = doc("PBT scores the first N validation pairs (0: all).", default=500)
    vocab_size: int = doc("Size of the shared byte-level BPE vocabulary.", default=8000)
    max_len: int = doc("Longest sentence in tokens; longer ones are truncated.", default=128)
    d_model: int = doc("Transformer width.", default=256)
    n_head: int = doc("Attention heads.", default=4)
    d_ff: int = doc("Feed-forward inner width.", default=1024)
    n_layer: int = doc("Layers in the encoder and in the decoder (each).", default=3)
    max_tokens: int = doc("Tokens per batch (the longer side, padding included).", default=2048)
    label_smoothing: float = doc("Label smoothing of the cross-entropy.", default=0.1)
    adam_betas: tuple[float, ...] = doc("Adam's beta1 and beta2 (Vaswani et al. 2017).", default=(0.9, 0.98))
    grad_clip: float = doc("Clip the gradient norm to this (0: no clipping).", default=1.0)
    bleu_chunks: int = doc("Fixed validation chunks whose BLEU are the t-test's samples.", default=10)
    beam_size: int = doc("Beam width for test BLEU and the translate command.", default=4)
    length_penalty: float = doc("GNMT length-penalty exponent used to rank finished beams.", default=0.6)
    eval_max_tokens: int = doc("Source tokens per decoding batch.", default=8000)
    device: Literal["auto", "cpu", "cuda"] = doc("auto: CUDA when present, else CPU.", default="auto")
    pbt: PBTConfig = field(
        default_factory=lambda: PBTConfig(
            population=8, budget_steps=640, ready_every=32, exploit="ttest", explore="perturb", workers=2
        )
    )


PROFILES = {
    # seconds: a tiny model on 400 sentence pairs, two workers, enough ready events for an exploit
    "smoke": Config(
        train_limit=400,
        val_limit=40,
        vocab_size=400,
        d_model=32,
        n_head=2,
        d_ff=64,
        n_layer=1,
        max_tokens=600,
        pbt=PBTConfig(population=4, budget_steps=24, ready_every=6, exploit="ttest", workers=2),
    ),
    # population 8 on 2 cores, about 70 minutes per arm (README: "cpu profile budget")
    "cpu": Config(),
    # the paper: base Transformer on WMT14, 32 members, ready every 2000 steps (README: GPU-hours estimate)
    "paper": Config(
        dataset="wmt14",
        val_limit=0,
        vocab_size=32000,
        max_len=256,
        d_model=512,
        n_head=8,
        d_ff=2048,
        n_layer=6,
        max_tokens=25000,
        eval_max_tokens=20000,
        pbt=PBTConfig(population=32, budget_steps=100_000, ready_every=2000, exploit="ttest", workers=1),
    ),
}


# -- model -------------------------------------------------------------------------------------------------------------
# Three dropout classes, so that each PBT hyperparameter finds exactly its own modules (``apply_dropout``).


class AttentionDropout(nn.Dropout):
    """Dropout on attention weights; its ``p`` is handed to scaled_dot_product_attention."""


class ResidualDropout(nn.Dropout):
    """Dropout on each sublayer's output before it joins the residual stream (the paper's "layer dropout")."""


class ReluDropout(nn.Dropout):
    """Dropout on the feed-forward hidden activations."""


class MultiHeadAttention(nn.Module):
    def __init__(self, d_model: int, n_head: int):
        super().__init__()
        self.n_head = n_head
        self.query = nn.Linear(d_model, d_model)
        self.key_value = nn.Linear(d_model, 2 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.dropout = AttentionDropout(0.0)

    def project_kv(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        B, S, D = x.shape
        k, v = self.key_value(x).view(B, S, 2, self.n_head, D // self.n_head).permute(2, 0, 3, 1, 4)  # (B, H, S, hd)
        return k, v

    def forward(
        self,
        x: torch.Tensor,
        kv: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None = None,
        causal: bool = False,
    ) -> torch.Tensor:
        B, T, D = x.shape
        q = self.query(x).view(B, T, self.n_head, D // self.n_head).transpose(1, 2)  # (B, H, T, hd)
        p = self.dropout.p if self.training else 0.0
        y = F.scaled_dot_product_attention(q, *kv, attn_mask=mask, dropout_p=p, is_causal=causal)  # (B, H, T, hd)
        return self.out(y.transpose(1, 2).reshape(B, T, D))


class FeedForward(nn.Sequential):
    def __init__(self, d_model: int, d_ff: int):
        super().__init__(nn.Linear(d_model, d_ff), nn.ReLU(), ReluDropout(0.0), nn.Linear(d_ff, d_model))


class EncoderLayer(nn.Module):
    def __init__(self, d_model: int, n_head: int, d_ff: int):
        super().__init__()
        self.norm1, self.attn = nn.LayerNorm(d_model), MultiHeadAttention(d_model, n_head)
        self.norm2, self.ff = nn.LayerNorm(d_model), FeedForward(d_model, d_ff)
        self.dropout = ResidualDropout(0.0)

    def forward(self, x: torch.Tensor, src_mask: torch.Tensor) -> torch.Tensor:
        h = self.norm1(x)  # pre-LN: normalise the sublayer input, keep the residual path untouched
        x = x + self.dropout(self.attn(h, self.attn.project_kv(h), src_mask))
        return x + self.dropout(self.ff(self.norm2(x)))


class DecoderLayer(nn.Module):
    def __init__(self, d_model: int, n_head: int, d_ff: int):
        super().__init__()
        self.norm1, self.self_attn = nn.LayerNorm(d_model), MultiHeadAttention(d_model, n_head)
        self.norm2, self.cross_attn = nn.LayerNorm(d_model), MultiHeadAttention(d_model, n_head)
        self.norm3, self.ff = nn.LayerNorm(d_model), FeedForward(d_model, d_ff)
        self.dropout = ResidualDropout(0.0)

    def forward(
        self, x: torch.Tensor, memory: torch.Tensor, src_mask: torch.Tensor, cache: dict[str, Any] | None = None
    ) -> torch.Tensor:
        h = self.norm1(x)
        self_kv = self.self_attn.project_kv(h)
        if cache is not None:  # incremental decoding: x is the newest position only; keep keys/values of the past
            if "self" in cache:
                self_kv = tuple(torch.cat([old, new], dim=2) for old, new in zip(cache["self"], self_kv))
            cache["self"] = self_kv
            if "cross" not in cache:
                cache["cross"] = self.cross_attn.project_kv(memory)
        x = x + self.dropout(self.self_attn(h, self_kv, causal=cache is None))
        cross_kv = cache["cross"] if cache is not None else self.cross_attn.project_kv(memory)
        x = x + self.dropout(self.cross_attn(self.norm2(x), cross_kv, src_mask))
        return x + self.dropout(self.ff(self.norm3(x)))


class Transformer(nn.Module):
    """Pre-LN encoder-decoder with one embedding shared by source, target and output (the vocabulary is shared)."""

    def __init__(self, vocab_size: int, d_model: int, n_head: int, d_ff: int, n_layer: int):
        super().__init__()
        self.d_model = d_model
        self.embed = nn.Embedding(vocab_size, d_model, padding_idx=data.PAD)
        self.encoder = nn.ModuleList(EncoderLayer(d_model, n_head, d_ff) for _ in range(n_layer))
        self.decoder = nn.ModuleList(DecoderLayer(d_model, n_head, d_ff) for _ in range(n_layer))
        self.encoder_norm, self.decoder_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.dropout = ResidualDropout(0.0)  # on the embeddings, as in Vaswani et al.
        for name, p in self.named_parameters():
            if p.dim() == 2 and name != "embed.weight":
                nn.init.xavier_uniform_(p)
        nn.init.normal_(self.embed.weight, std=d_model**-0.5)  # fairseq's init for a scaled, tied embedding
        with torch.no_grad():
            self.embed.weight[data.PAD].zero_()

    def embed_tokens(self, ids: torch.Tensor, offset: int = 0) -> torch.Tensor:
        T = ids.shape[1]
        position = torch.arange(offset, offset + T, device=ids.device, dtype=torch.float32)[:, None]  # (T, 1)
        freq = torch.exp(torch.arange(0, self.d_model, 2, device=ids.device) * (-math.log(10000.0) / self.d_model))
        pe = torch.cat([torch.sin(position * freq), torch.cos(position * freq)], dim=1)  # (T, D), sinusoids
        return self.dropout(self.embed(ids) * math.sqrt(self.d_model) + pe)  # (B, T, D)

    def encode(self, src: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        src_mask = (src != data.PAD)[:, None, None, :]  # (B, 1, 1, S): True where a query may attend
        x = self.embed_tokens(src)
        for layer in self.encoder:
            x = layer(x, src_mask)
        return self.encoder_norm(x), src_mask  # (B, S, D)

    def decode(
        self,
        tgt_in: torch.Tensor,
        memory: torch.Tensor,
        src_mask: torch.Tensor,
        caches: list[dict[str, Any]] | None = None,
        offset: int = 0,
    ) -> torch.Tensor:
        x = self.embed_tokens(tgt_in, offset)
        for i, layer in enumerate(self.decoder):
            x = layer(x, memory, src_mask, None if caches is None else caches[i])
        return self.decoder_norm(x) @ self.embed.weight.T  # (B, T, V) logits, tied output projection

    def forward(self, src: torch.Tensor, tgt_in: torch.Tensor) -> torch.Tensor:
        memory, src_mask = self.encode(src)
        return self.decode(tgt_in, memory, src_mask)


def apply_dropout(model: nn.Module, hparams: HParams) -> None:
    """Write the three dropout rates into every dropout module of the model (takes effect at the next forward)."""
    rates = {AttentionDropout: "attention_dropout", ResidualDropout: "residual_dropout", ReluDropout: "relu_dropout"}
    for module in model.modules():
        if type(module) in rates:
            module.p = float(hparams[rates[type(module)]])


@dataclass
class Member:
    """A member's full training state; all of it goes into its checkpoint."""

    model: Transformer
    optimizer: torch.optim.Adam
    shuffle: torch.Generator  # draws each epoch's batch order
    dropout_rng: torch.Tensor  # torch's global RNG state while this member trains (dropout masks)
    hparams: HParams
    step: int = 0
    epoch: int = 0
    cursor: int = 0
    order: list[int] = field(default_factory=list)


# -- data --------------------------------------------------------------------------------------------------------------


def next_batch(
    member: Member,
    batches: list[list[int]],
    train_src: list[list[int]],
    train_tgt: list[list[int]],
    device: torch.device,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The member's next batch in its epoch's order (a new epoch draws a new order of the same batches): source,
    target input and target output ids."""
    if member.cursor >= len(member.order):  # a new epoch: same batches, new order
        member.order = torch.randperm(len(batches), generator=member.shuffle).tolist()
        member.cursor, member.epoch = 0, member.epoch + 1
    batch = batches[member.order[member.cursor]]
    member.cursor += 1
    src = data.pad([train_src[i] for i in batch])  # (B, S)
    tgt = data.pad([train_tgt[i] for i in batch], bos=True)  # (B, T+1): BOS y1 .. yn EOS
    return src.to(device), tgt[:, :-1].to(device), tgt[:, 1:].to(device)


# -- one train step ----------------------------------------------------------------------------------------------------


def train_step(
    member: Member, src: torch.Tensor, tgt_in: torch.Tensor, tgt_out: torch.Tensor, config: Config, device: torch.device
) -> tuple[float, int]:
    """One Adam step on one batch. Returns the batch's summed loss and its number of target tokens."""
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
        logits = member.model(src, tgt_in)  # (B, T, V)
    loss = F.cross_entropy(
        logits.float().flatten(0, 1), tgt_out.flatten(), ignore_index=data.PAD, label_smoothing=config.label_smoothing
    )
    member.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if config.grad_clip > 0:
        nn.utils.clip_grad_norm_(member.model.parameters(), config.grad_clip)
    member.optimizer.step()
    member.step += 1
    n = int((tgt_out != data.PAD).sum())
    return float(loss.detach()) * n, n


# -- evaluate: decoding and BLEU ---------------------------------------------------------------------------------------


@torch.no_grad()
def beam_search(model: Transformer, src: torch.Tensor, beam: int, max_len: int, alpha: float = 0.6) -> list[list[int]]:
    """Beam search with cached keys/values; ``beam=1`` is greedy decoding. Finished beams stay in the beam with their
    score frozen; at the end the best is picked by log-probability / ((5 + length) / 6) ** alpha (Wu et al. 2016)."""
    B, device = src.shape[0], src.device
    memory, src_mask = model.encode(src)
    memory, src_mask = memory.repeat_interleave(beam, 0), src_mask.repeat_interleave(beam, 0)  # (B*K, S, D)
    scores = torch.zeros(B, beam, device=device)
    scores[:, 1:] = -math.inf  # the first step expands beam 0 only, so the K beams start distinct
    tokens = torch.full((B * beam, 1), data.BOS, device=device)
    finished = torch.zeros(B * beam, dtype=torch.bool, device=device)
    caches: list[dict[str, Any]] = [{} for _ in model.decoder]
    for t in range(max_len):
        logits = model.decode(tokens[:, -1:], memory, src_mask, caches, offset=t)[:, -1].float()  # (B*K, V)
        logits[:, [data.PAD, data.BOS]] = -math.inf  # never emitted (PAD's tied embedding row is not trained as input)
        logp = torch.log_softmax(logits, dim=-1)
        logp[finished] = -math.inf
        logp[finished, data.EOS] = 0.0  # a finished beam can only repeat EOS, at no cost
        V = logp.shape[1]
        top, index = (scores.view(-1, 1) + logp).view(B, beam * V).topk(beam, dim=1)  # (B, K)
        parent = (torch.arange(B, device=device)[:, None] * beam + index // V).view(-1)  # (B*K,) rows to keep
        token = (index % V).view(-1, 1)
        tokens = torch.cat([tokens[parent], token], dim=1)
        finished = finished[parent] | (token[:, 0] == data.EOS)
        scores = top
        for cache in caches if beam > 1 else ():  # greedy never reorders
            cache["self"] = tuple(kv[parent] for kv in cache["self"])
        if finished.all():
            break
    out = tokens[:, 1:].tolist()
    lengths = torch.tensor([ids.index(data.EOS) + 1 if data.EOS in ids else len(ids) for ids in out], device=device)
    normalised = scores.view(-1) / ((5.0 + lengths) / 6.0) ** alpha
    best = normalised.view(B, beam).argmax(dim=1) + torch.arange(B, device=device) * beam
    return [out[i] for i in best.tolist()]


def translate(
    model: Transformer,
    tokenizer: Tokenizer,
    sentences: list[str],
    beam: int,
    max_len: int,
    max_tokens: int,
    device: torch.device,
    alpha: float = 0.6,
) -> list[str]:
    """Translate raw sentences, decoding them in batches of similar length; returns raw (detokenised) text."""
    model.eval()
    src_ids = data.encode(tokenizer, sentences, max_len)
    hypotheses = [""] * len(sentences)
    for batch in data.make_batches([len(s) for s in src_ids], max(max_tokens // beam, max_len)):
        src = data.pad([src_ids[i] for i in batch]).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            outputs = beam_search(model, src, beam, min(max_len, int(1.5 * src.shape[1]) + 10), alpha)
        for i, ids in zip(batch, outputs):
            hypotheses[i] = data.decode(tokenizer, ids)
    return hypotheses


def evaluate(
    model: Transformer, tokenizer: Tokenizer, src: list[str], ref: list[str], config: Config, device: torch.device
) -> Evaluation:
    """Greedy-decoded corpus BLEU of ``src`` against ``ref``, with the BLEU of ``bleu_chunks`` fixed slices as the
    samples that Welch's t-test compares."""
    hypotheses = translate(model, tokenizer, src, 1, config.max_len, config.eval_max_tokens, device)
    score = data.bleu(hypotheses, ref)
    return Evaluation(
        score=score.score,
        samples=data.chunk_bleus(hypotheses, ref, config.bleu_chunks),
        metrics={"bleu": score.score, "bp": score.bp, "sys_len": score.sys_len},
    )


# -- the task ----------------------------------------------------------------------------------------------------------


class TranslationTask:
    """``make``/``train``/``evaluate``/``save``/``load`` for PBT. Data and tokeniser load on first use, so building
    the task (as the controller and each worker do) only checks that the data is there."""

    space = SPACE

    def __init__(self, config: Config):
        self.config = config
        self.device = pick_device(config.device)
        self.cache_dir = Path(config.cache_dir).expanduser() if config.cache_dir else data.default_cache_dir()
        self.data_dir = data.resolve_data_dir(config.dataset, config.data_dir, self.cache_dir)
        self.splits = data.SPLITS[config.dataset]
        self._tokenizer: Tokenizer | None = None

    @property
    def tokenizer(self) -> Tokenizer:
        if self._tokenizer is None:
            self._prepare()
        assert self._tokenizer is not None
        return self._tokenizer

    def _prepare(self) -> None:
        cfg = self.config
        src, tgt = data.read_pairs(self.data_dir, self.splits["train"], cfg.train_limit)
        self._tokenizer = data.cached_tokenizer(src, tgt, cfg.vocab_size, self.cache_dir)
        self.train_src = data.encode(self._tokenizer, src, cfg.max_len)
        self.train_tgt = data.encode(self._tokenizer, tgt, cfg.max_len)
        lengths = [max(len(s), len(t) + 1) for s, t in zip(self.train_src, self.train_tgt)]  # +1: BOS on the input
        self.batches = data.make_batches(lengths, cfg.max_tokens)
        self.val_src, self.val_ref = data.read_pairs(self.data_dir, self.splits["val"], cfg.val_limit)

    def _build(self, hparams: HParams, shuffle: torch.Generator) -> Member:
        cfg = self.config
        model = Transformer(self.tokenizer.get_vocab_size(), cfg.d_model, cfg.n_head, cfg.d_ff, cfg.n_layer)
        model.to(self.device)
        optimizer = torch.optim.Adam(model.parameters(), lr=float(hparams["lr"]), betas=tuple(cfg.adam_betas), eps=1e-9)
        return Member(model, optimizer, shuffle, torch.get_rng_state(), dict(hparams))

    def make(self, hparams: HParams, seed: int) -> Member:
        return self._build(hparams, seed_everything(seed))  # initial weights and batch order drawn from the seed

    def train(self, member: Member, hparams: HParams, steps: int) -> dict[str, float]:
        for group in member.optimizer.param_groups:  # hyperparameters apply from this step on (never baked in)
            group["lr"] = float(hparams["lr"])
        apply_dropout(member.model, hparams)
        member.hparams = dict(hparams)
        member.model.train()
        torch.set_rng_state(member.dropout_rng)  # members sharing a process do not share dropout randomness
        started, total_loss, tokens = time.perf_counter(), 0.0, 0
        for _ in range(steps):
            src, tgt_in, tgt_out = next_batch(member, self.batches, self.train_src, self.train_tgt, self.device)
            batch_loss, n = train_step(member, src, tgt_in, tgt_out, self.config, self.device)
            total_loss, tokens = total_loss + batch_loss, tokens + n
        member.optimizer.zero_grad(set_to_none=True)  # a member waiting in a worker's cache holds no gradients
        member.dropout_rng = torch.get_rng_state()
        seconds = time.perf_counter() - started
        epochs = member.epoch - 1 + member.cursor / len(self.batches)
        return {
            "loss": total_loss / max(tokens, 1),
            "tgt_tokens": tokens,
            "tgt_tokens_per_s": tokens / seconds,
            "epoch": epochs,
            "lr": float(hparams["lr"]),
        }

    def evaluate(self, member: Member) -> Evaluation:
        return evaluate(member.model, self.tokenizer, self.val_src, self.val_ref, self.config, self.device)

    def save(self, member: Member, path: Path) -> None:
        save_checkpoint(
            {
                "format": CHECKPOINT_FORMAT,
                "model": member.model.state_dict(),
                "optimizer": member.optimizer.state_dict(),
                "shuffle": member.shuffle.get_state(),
                "dropout_rng": member.dropout_rng,
                "hparams": member.hparams,
                "step": member.step,
                "epoch": member.epoch,
                "cursor": member.cursor,
                "order": torch.tensor(member.order, dtype=torch.long),
                "tokenizer": self.tokenizer.to_str(),
            },
            path,
        )

    def load(self, path: Path) -> Member:
        ckpt = load_checkpoint(
            path, ("model", "optimizer", "shuffle", "dropout_rng", "hparams", "tokenizer"), CHECKPOINT_FORMAT
        )
        if ckpt["tokenizer"] != self.tokenizer.to_str():
            raise ValueError(f"{path} was trained with a different tokeniser than this config builds")
        member = self._build(ckpt["hparams"], torch.Generator())
        member.model.load_state_dict(ckpt["model"])
        member.optimizer.load_state_dict(ckpt["optimizer"])
        member.shuffle.set_state(ckpt["shuffle"])
        member.dropout_rng = ckpt["dropout_rng"]
        member.step, member.epoch, member.cursor = ckpt["step"], ckpt["epoch"], ckpt["cursor"]
        member.order = ckpt["order"].tolist()
        apply_dropout(member.model, member.hparams)
        return member


def make_task(config: Config) -> TranslationTask:
    return TranslationTask(config)


# config field -> path under a local data root (``pbt-repro demo --data-dir``)
LOCAL_DATA = {"data_dir": "multi30k"}


def estimate(config: Config) -> dict[str, str]:
    """The ``--dry-run`` cost estimate (README "paper"): about 1.4 H100-hours per member of the base model for 100k
    steps, from FLOPs at 20 % of peak, within a factor of two; scaled by the member budget."""
    hours = 1.4 * config.pbt.population * config.pbt.budget_steps / 100_000 * (config.d_model / 512) ** 2
    return {"gpu_hours": f"about {hours:.1f} H100-hours (FLOP estimate, within a factor of two)"}
