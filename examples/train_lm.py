"""Train a small character-level Transformer language model with oxmx (`make demo`).

By default the text is the Python standard library's own source code (the first few
hundred kB of its ``*.py`` files in sorted order), so nothing is downloaded; ``--data
PATH`` trains on any text file instead. The model is a decoder-only Transformer: token
embedding, pre-norm blocks of causal self-attention with rotary position encoding
(``mx.fast.scaled_dot_product_attention``) and an MLP, an output projection tied to the
embedding. It is trained with cross-entropy, AdamW and a warmup + cosine learning-rate
schedule; the whole training step (forward, backward, optimizer update) is one
``mx.compile``d function.

It shows a progress bar (loss, tokens/s, time left), the validation loss before training
and after each epoch, writes a loss-curve PNG and a ``.safetensors`` checkpoint (weights,
optimizer state, loss history) after each epoch, and samples text from the model at the
end. ``--resume CHECKPOINT`` continues a run where the checkpoint left it.

    python examples/train_lm.py                # the default run (about 2 minutes on 2 CPU cores)
    python examples/train_lm.py --quick        # a few seconds, for tests
    python examples/train_lm.py --resume runs/lm/checkpoint.safetensors --epochs 6
"""

import argparse
import json
import math
import os
import sys
import sysconfig
import time
from functools import partial
from pathlib import Path

import numpy as np

import oxmx.core as mx
import oxmx.nn as nn
import oxmx.optimizers as optim
from oxmx.utils import tree_flatten, tree_unflatten

# Hyper-parameters a checkpoint records and `--resume` reuses; their defaults, and the
# smaller ones of `--quick`.
DEFAULTS = dict(
    data=None, max_chars=400_000, seq_len=96, batch_size=32, dims=128, layers=2, heads=4,
    lr=3e-3, warmup=30, seed=0, epochs=3,
)
QUICK = dict(max_chars=8_000, seq_len=32, batch_size=16, dims=32, layers=1, heads=2, lr=1e-2, warmup=4, epochs=2)
CHECKPOINT = "checkpoint.safetensors"


def positive(text):
    """argparse type: an integer >= 1."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text):
    """argparse type: a float > 0."""
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, got {value}")
    return value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", help="a text file to train on (default: the Python standard library's source)")
    p.add_argument("--max-chars", type=positive, help=f"characters of text to use (default {DEFAULTS['max_chars']:,})")
    p.add_argument("--epochs", type=positive, help=f"passes over the training text (default {DEFAULTS['epochs']})")
    p.add_argument("--steps", type=positive, help="stop at this step (--resume finishes the run later)")
    p.add_argument("--batch-size", type=positive, help=f"sequences per batch (default {DEFAULTS['batch_size']})")
    p.add_argument("--seq-len", type=positive, help=f"characters per sequence (default {DEFAULTS['seq_len']})")
    p.add_argument("--dims", type=positive, help=f"model width (default {DEFAULTS['dims']})")
    p.add_argument("--layers", type=positive, help=f"Transformer blocks (default {DEFAULTS['layers']})")
    p.add_argument("--heads", type=positive, help=f"attention heads (default {DEFAULTS['heads']})")
    p.add_argument("--lr", type=positive_float, help=f"peak learning rate (default {DEFAULTS['lr']})")
    p.add_argument("--warmup", type=positive, help=f"linear warmup steps (default {DEFAULTS['warmup']})")
    p.add_argument("--seed", type=int, help="random seed of the weights and the batch order (default 0)")
    p.add_argument("--out", default="runs/lm", help="output directory (default runs/lm)")
    p.add_argument("--resume", metavar="CHECKPOINT", help="continue a run from its checkpoint (--epochs may extend it)")
    p.add_argument("--sample-chars", type=positive, default=400, help="characters to sample at the end (default 400)")
    p.add_argument("--temperature", type=positive_float, default=0.8, help="sampling temperature (default 0.8)")
    p.add_argument("--prompt", default="def ", help="text the sample starts from (default 'def ')")
    p.add_argument("--quick", action="store_true", help="a tiny model on a little text for a few steps (a few seconds)")
    return p.parse_args(argv)


def settings(args, saved):
    """The run's hyper-parameters: a checkpoint's (``saved``) when resuming, else the
    command line over the defaults. An option given explicitly that contradicts the
    checkpoint is an error rather than being ignored; only ``epochs`` may change on
    resume (the schedule keeps the span it was planned with, ``schedule_epochs``)."""
    base = dict(DEFAULTS, **(QUICK if args.quick else {}))
    cfg = {}
    for key, default in base.items():
        given = getattr(args, key)
        if saved is None or (key == "epochs" and given is not None):
            cfg[key] = default if given is None else given
        elif given is not None and given != saved[key]:
            raise SystemExit(f"train_lm: --{key.replace('_', '-')} {given} contradicts the checkpoint's {saved[key]!r}")
        else:
            cfg[key] = saved[key]
    cfg["schedule_epochs"] = cfg["epochs"] if saved is None else saved["schedule_epochs"]
    if cfg["dims"] % cfg["heads"] or (cfg["dims"] // cfg["heads"]) % 2:
        raise SystemExit("train_lm: --dims must be a multiple of --heads with an even head size")
    return cfg


# ---------------------------------------------------------------------------------------
# data


def stdlib_text(max_chars):
    """The standard library's ``*.py`` files (tests and site-packages left out), sorted by
    path, concatenated up to ``max_chars`` characters: the same text on every run."""
    root = sysconfig.get_paths()["stdlib"]
    skip = {"site-packages", "dist-packages", "test", "tests", "idle_test", "__pycache__"}
    paths = []
    for folder, subdirs, files in os.walk(root):
        subdirs[:] = [d for d in subdirs if d not in skip]
        paths += [os.path.join(folder, f) for f in files if f.endswith(".py")]
    parts, size = [], 0
    for path in sorted(paths, key=lambda p: os.path.relpath(p, root)):
        with open(path, encoding="utf-8", errors="replace") as f:
            parts.append(f.read())
        size += len(parts[-1])
        if size >= max_chars:
            break
    # Keep the vocabulary to printable ASCII: the rare other characters become "?".
    text = "".join(parts)[:max_chars]
    text = "".join(c if " " <= c <= "~" or c == "\n" else "?" for c in text)
    return text, f"Python {sys.version.split()[0]} standard library source"


def load_text(cfg):
    if cfg["data"] is None:
        return stdlib_text(cfg["max_chars"])
    with open(cfg["data"], encoding="utf-8", errors="replace") as f:
        return f.read(cfg["max_chars"]), cfg["data"]


class Corpus:
    """Text as token ids with a character vocabulary, split 90/10 into train/validation."""

    def __init__(self, text, vocab=None):
        self.vocab = vocab or "".join(sorted(set(text)))
        index = {c: i for i, c in enumerate(self.vocab)}
        unknown = set(text) - index.keys()
        if unknown:
            raise SystemExit(f"train_lm: the text has characters the vocabulary lacks: {sorted(unknown)[:9]}")
        ids = np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))
        cut = int(0.9 * len(ids))
        self.train, self.val = ids[:cut], ids[cut:]

    def encode(self, s):
        return [self.vocab.index(c) for c in s if c in self.vocab]

    def decode(self, ids):
        return "".join(self.vocab[i] for i in ids)


def windows(ids, seq_len, offset=0):
    """Start positions of non-overlapping (input, target) windows of ``seq_len + 1`` ids."""
    return np.arange(offset, len(ids) - seq_len - 1, seq_len)


def batch(ids, starts, seq_len):
    rows = ids[starts[:, None] + np.arange(seq_len + 1)]
    return mx.array(rows[:, :-1]), mx.array(rows[:, 1:])


def epoch_batches(ids, cfg, epoch, n):
    """The ``n`` shuffled batches of one epoch (the windows of the training text from a
    random offset). The order depends only on (seed, epoch), so a resumed run sees the
    batches the uninterrupted run would have seen."""
    rng = np.random.default_rng([cfg["seed"], epoch])
    starts = rng.permutation(windows(ids, cfg["seq_len"], offset=int(rng.integers(cfg["seq_len"]))))
    b = cfg["batch_size"]
    return [starts[i * b : (i + 1) * b] for i in range(n)]


def steps_per_epoch(corpus, cfg):
    """Batches per epoch, counted at the largest offset so that every epoch has as many."""
    n = len(windows(corpus.train, cfg["seq_len"], offset=cfg["seq_len"] - 1)) // cfg["batch_size"]
    if n < 1 or len(windows(corpus.val, cfg["seq_len"])) == 0:
        raise SystemExit("train_lm: too little text for one training batch and one validation window; "
                         "lower --batch-size/--seq-len or give more text")
    return n


# ---------------------------------------------------------------------------------------
# model


class CausalSelfAttention(nn.Module):
    def __init__(self, dims, heads):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dims, 3 * dims, bias=False)
        self.out = nn.Linear(dims, dims, bias=False)
        self.rope = nn.RoPE(dims // heads)

    def __call__(self, x):
        B, L, D = x.shape
        q, k, v = (t.reshape(B, L, self.heads, -1).transpose(0, 2, 1, 3) for t in mx.split(self.qkv(x), 3, axis=-1))
        q, k = self.rope(q), self.rope(k)
        scale = 1.0 / math.sqrt(D // self.heads)
        o = mx.fast.scaled_dot_product_attention(q, k, v, scale=scale, mask="causal")
        return self.out(o.transpose(0, 2, 1, 3).reshape(B, L, D))


class Block(nn.Module):
    """Pre-norm Transformer block: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, dims, heads):
        super().__init__()
        self.norm1 = nn.LayerNorm(dims)
        self.attention = CausalSelfAttention(dims, heads)
        self.norm2 = nn.LayerNorm(dims)
        self.mlp = nn.Sequential(nn.Linear(dims, 4 * dims), nn.GELU(), nn.Linear(4 * dims, dims))

    def __call__(self, x):
        x = x + self.attention(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CharTransformer(nn.Module):
    def __init__(self, vocab_size, dims, layers, heads):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, dims)
        self.blocks = [Block(dims, heads) for _ in range(layers)]
        self.norm = nn.LayerNorm(dims)

    def __call__(self, tokens):
        x = self.embedding(tokens)
        for block in self.blocks:
            x = block(x)
        return self.embedding.as_linear(self.norm(x))  # output projection tied to the embedding


def loss_fn(model, x, y):
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


def validation_loss(model, corpus, cfg, max_batches=8):
    """Mean loss over (at most ``max_batches``) fixed batches of the validation text."""
    starts = windows(corpus.val, cfg["seq_len"])[: max_batches * cfg["batch_size"]]
    b = cfg["batch_size"]
    losses = [loss_fn(model, *batch(corpus.val, starts[i : i + b], cfg["seq_len"])) for i in range(0, len(starts), b)]
    return mx.mean(mx.stack(losses)).item()


def sample(model, corpus, prompt, n, temperature, seq_len):
    """Draw ``n`` characters after ``prompt``, each from the model's softmax at
    ``temperature`` given the last ``seq_len`` characters (the context it was trained on)."""
    ids = corpus.encode(prompt) or [0]
    for _ in range(n):
        logits = model(mx.array([ids[-seq_len:]]))[0, -1]
        ids.append(mx.random.categorical(logits / temperature).item())
    return corpus.decode(ids)


# ---------------------------------------------------------------------------------------
# checkpoints and the loss plot


def save_checkpoint(path, model, optimizer, cfg, vocab, history):
    """One ``.safetensors`` file: the weights (``model.*``), the optimizer's state
    (``optimizer.*``, its step count included), the loss history (``history.*``), and the
    settings and vocabulary as metadata."""
    arrays = {f"model.{k}": v for k, v in tree_flatten(model.parameters())}
    arrays.update({f"optimizer.{k}": v for k, v in tree_flatten(optimizer.state)})
    arrays["history.train_loss"] = mx.array(history["train"], dtype=mx.float32)
    arrays["history.val_step"] = mx.array(history["val_step"], dtype=mx.int32)
    arrays["history.val_loss"] = mx.array(history["val"], dtype=mx.float32)
    meta = {"format": "oxmx-train_lm-1", "config": json.dumps(cfg), "vocab": json.dumps(vocab)}
    mx.save_safetensors(str(path), arrays, metadata=meta)


def load_checkpoint(path):
    try:
        arrays, meta = mx.load(str(path), return_metadata=True)
    except (OSError, ValueError) as e:
        raise SystemExit(f"train_lm: cannot read the checkpoint {path}: {e}") from e
    if meta.get("format") != "oxmx-train_lm-1":
        raise SystemExit(f"train_lm: {path} is not a checkpoint written by this script")
    ckpt = {"config": json.loads(meta["config"]), "vocab": json.loads(meta["vocab"]), "model": [], "optimizer": []}
    for key, value in arrays.items():
        group, name = key.split(".", 1)
        if group != "history":
            ckpt[group].append((name, value))
    ckpt["history"] = {
        "train": arrays["history.train_loss"].tolist(),
        "val_step": arrays["history.val_step"].tolist(),
        "val": arrays["history.val_loss"].tolist(),
    }
    return ckpt


def pyplot():
    """matplotlib's pyplot on its file-only Agg backend; None where matplotlib is missing
    (the run still trains and saves its checkpoint, without the pictures)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot(path, history, spe, title):
    """The loss curve: training loss per step (raw and smoothed) and validation loss."""
    plt = pyplot()
    if plt is None:
        return False
    train = np.array(history["train"])
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(np.arange(1, len(train) + 1), train, color="tab:blue", alpha=0.3, lw=0.8, label="train (per step)")
    k = max(1, min(25, len(train) // 10))
    smooth = np.convolve(train, np.ones(k) / k, mode="valid")
    ax.plot(np.arange(k, len(train) + 1), smooth, color="tab:blue", lw=1.5, label=f"train ({k}-step mean)")
    ax.plot(history["val_step"], history["val"], "o-", color="tab:orange", label="validation")
    for e in range(spe, len(train), spe):
        ax.axvline(e, color="grey", lw=0.5, ls=":")  # epoch boundaries
    ax.set(xlabel="step", ylabel="cross-entropy (nats/char)", title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------


def build(cfg, vocab_size, spe):
    """The model and its AdamW optimizer: linear warmup to ``lr``, then a cosine decay to
    ``lr / 20`` at the end of ``schedule_epochs`` epochs (constant after that)."""
    mx.random.seed(cfg["seed"])
    model = CharTransformer(vocab_size, cfg["dims"], cfg["layers"], cfg["heads"])
    lr, warmup = cfg["lr"], cfg["warmup"]
    decay_steps = max(1, cfg["schedule_epochs"] * spe - warmup)
    schedule = optim.join_schedules(
        [optim.linear_schedule(0.0, lr, warmup), optim.cosine_decay(lr, decay_steps, end=lr / 20)], [warmup]
    )
    optimizer = optim.AdamW(learning_rate=schedule, weight_decay=0.01)
    optimizer.init(model.trainable_parameters())
    return model, optimizer


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    if mx.cuda.is_available():
        mx.set_default_device(mx.gpu)
    saved = load_checkpoint(args.resume) if args.resume else None
    cfg = settings(args, saved["config"] if saved else None)
    text, source = load_text(cfg)
    corpus = Corpus(text, vocab=saved["vocab"] if saved else None)
    spe = steps_per_epoch(corpus, cfg)
    stop = cfg["epochs"] * spe if args.steps is None else min(args.steps, cfg["epochs"] * spe)

    model, optimizer = build(cfg, len(corpus.vocab), spe)
    history = {"train": [], "val_step": [], "val": []}
    if saved:
        model.load_weights(saved["model"])
        optimizer.state = tree_unflatten(saved["optimizer"])
        history = saved["history"]
    step = len(history["train"])

    n_params = sum(v.size for _, v in tree_flatten(model.parameters()))
    print(f"oxmx {mx.__version__} on {mx.default_device()}")
    print(f"data: {source}: {len(text):,} characters, vocabulary of {len(corpus.vocab)}, "
          f"{len(corpus.train):,} train / {len(corpus.val):,} validation")
    print(f"model: {cfg['layers']} blocks, {cfg['dims']} dims, {cfg['heads']} heads, {n_params:,} parameters; "
          f"batches of {cfg['batch_size']} x {cfg['seq_len']} chars, {spe} steps per epoch, peak lr {cfg['lr']}")

    # One compiled step: forward, backward, gradient clipping and the AdamW update. The
    # model's and the optimizer's state are declared as inputs and outputs so that the
    # compiled function reads and updates them in place.
    state = [model.state, optimizer.state]
    loss_and_grad = nn.value_and_grad(model, loss_fn)

    @partial(mx.compile, inputs=state, outputs=state)
    def train_step(x, y):
        loss, grads = loss_and_grad(model, x, y)
        grads, _ = optim.clip_grad_norm(grads, max_norm=1.0)
        optimizer.update(model, grads)
        return loss

    if saved:
        print(f"resumed from {args.resume} at step {step} (epoch {step / spe:.2f}), "
              f"validation loss {history['val'][-1]:.3f}")
    else:
        history["val_step"].append(0)
        history["val"].append(validation_loss(model, corpus, cfg))
        chance = f"ln {len(corpus.vocab)} = {math.log(len(corpus.vocab)):.3f} is chance"
        print(f"validation loss before training: {history['val'][0]:.3f} ({chance})")
    if step >= stop:
        print(f"nothing to train: the checkpoint is at step {step} of {stop}; pass a larger --epochs to train more")

    tokens_per_step = cfg["batch_size"] * cfg["seq_len"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path, png_path, sample_path = out / CHECKPOINT, out / "loss.png", out / "sample.txt"
    title = f"char-level Transformer on {Path(source).name if cfg['data'] else 'the Python stdlib'}"
    first_step, t0 = step, time.perf_counter()
    bar = tqdm(total=stop * tokens_per_step, initial=step * tokens_per_step, unit="tok", unit_scale=True,
               dynamic_ncols=True, mininterval=0.5)
    while step < stop:
        epoch, done = divmod(step, spe)
        bar.set_description(f"epoch {epoch + 1}/{cfg['epochs']}")
        for starts in epoch_batches(corpus.train, cfg, epoch, spe)[done : done + stop - step]:
            loss = train_step(*batch(corpus.train, starts, cfg["seq_len"]))
            mx.eval(state, loss)
            history["train"].append(loss.item())
            step += 1
            bar.update(tokens_per_step)
            bar.set_postfix(loss=f"{history['train'][-1]:.3f}", step=step, refresh=False)
        # The end of an epoch (or the --steps stop): validate, save, plot.
        history["val_step"].append(step)
        history["val"].append(validation_loss(model, corpus, cfg))
        where = f"epoch {epoch + 1}/{cfg['epochs']}" if step % spe == 0 else f"stopped in epoch {epoch + 1} (--steps)"
        train_loss = np.mean(history["train"][epoch * spe :])  # this epoch's steps
        bar.write(f"{where}: step {step}, train loss {train_loss:.3f}, validation loss {history['val'][-1]:.3f}")
        save_checkpoint(ckpt_path, model, optimizer, cfg, corpus.vocab, history)
        plotted = plot(png_path, history, spe, title)
    bar.close()
    elapsed = time.perf_counter() - t0

    unknown = sorted(set(args.prompt) - set(corpus.vocab))
    if unknown:
        print(f"note: the prompt's characters {unknown} are not in the vocabulary and are left out")
    text_out = sample(model, corpus, args.prompt, args.sample_chars, args.temperature, cfg["seq_len"])
    sample_path.write_text(text_out)
    print(f"\n--- sampled at temperature {args.temperature} " + "-" * 40 + f"\n{text_out}\n" + "-" * 68)

    trained = step - first_step
    rate = trained * tokens_per_step / max(elapsed, 1e-9)
    print(f"trained {trained} steps in {elapsed:.1f} s ({rate:,.0f} tokens/s) on {mx.default_device()}; "
          f"at step {step} of {cfg['epochs'] * spe} ({cfg['epochs']} epochs)")
    print(f"validation loss: first {history['val'][0]:.3f} -> last {history['val'][-1]:.3f}")
    if trained:
        print(f"wrote {ckpt_path} (weights, optimizer state, loss history; --resume {ckpt_path} continues)")
        print(f"wrote {png_path} (loss curve)" if plotted else "no loss curve: matplotlib is not installed")
    print(f"wrote {sample_path} (the sample)")


if __name__ == "__main__":
    main()
