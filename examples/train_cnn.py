"""Train a small convolutional network to read digits, with oxmx.

Nothing is downloaded: the images are drawn here, in NumPy. Each of the ten digits is a
few pen strokes (lines and arcs) in a unit box; every image moves the stroke points a
little, applies a random rotation, shear, scale and shift, and draws the strokes with a
random pen width into 28 x 28 pixels (anti-aliased), with two fainter stray strokes and
noise. The network (two ``Conv2d`` + ``MaxPool2d`` stages, then two ``Linear`` layers;
images are channels-last, ``NHWC``, as in MLX) is trained with cross-entropy and AdamW in
one ``mx.compile``d step.

It shows a progress bar, the test accuracy after each epoch, and writes a plot of the loss
and the accuracy, the weights (``.safetensors``) and a sheet of test images with the
model's answers.

    python examples/train_cnn.py             # the default run (about half a minute on 2 CPU cores)
    python examples/train_cnn.py --quick     # a few seconds, for tests
"""

import argparse
import math
import time
from functools import partial
from pathlib import Path

import numpy as np

import oxmx.core as mx
import oxmx.nn as nn
import oxmx.optimizers as optim
from oxmx.utils import tree_flatten

SIZE = 28
TEST_SEED = 1_000_003  # the test images are drawn with seed + TEST_SEED: not the training draw


# ---------------------------------------------------------------------------------------
# the digits


def _arc(cx, cy, rx, ry, start, stop, n=9):
    """Points on an ellipse from angle ``start`` to ``stop`` (degrees; 0 = right, 90 = down)."""
    t = np.radians(np.linspace(start, stop, n))
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _line(*points):
    return np.array(points, dtype=np.float64)


# Each digit: a list of polylines in a unit box (x to the right, y down).
STROKES = {
    0: [_arc(0.5, 0.5, 0.28, 0.4, 0, 360, 15)],
    1: [_line((0.32, 0.28), (0.52, 0.1), (0.52, 0.9))],
    2: [np.concatenate([_arc(0.5, 0.32, 0.26, 0.22, 190, 395), _line((0.22, 0.9), (0.8, 0.9))])],
    3: [_arc(0.48, 0.3, 0.24, 0.2, 210, 450), _arc(0.48, 0.7, 0.27, 0.2, 270, 510)],
    4: [_line((0.66, 0.9), (0.66, 0.1), (0.16, 0.64), (0.86, 0.64))],
    5: [np.concatenate([_line((0.76, 0.1), (0.3, 0.1), (0.27, 0.46)), _arc(0.5, 0.64, 0.27, 0.25, 220, 500)])],
    6: [np.concatenate([_arc(0.75, 0.62, 0.48, 0.55, 240, 180), _arc(0.5, 0.67, 0.23, 0.23, 180, 540)])],
    7: [_line((0.2, 0.12), (0.8, 0.12), (0.42, 0.9))],
    8: [_arc(0.5, 0.29, 0.19, 0.18, 0, 360, 12), _arc(0.5, 0.69, 0.24, 0.21, 0, 360, 13)],
    9: [np.concatenate([_arc(0.5, 0.34, 0.22, 0.22, 0, 360, 13), _line((0.72, 0.34), (0.62, 0.9))])],
}


def _segments(digit):
    """The strokes of ``digit`` as an array of segments, shape (S, 2 endpoints, 2)."""
    return np.concatenate([np.stack([p[:-1], p[1:]], axis=1) for p in STROKES[digit]])


def draw_digits(labels, rng, chunk=128):
    """Render ``labels`` into float32 images of shape (N, 28, 28, 1) with values in [0, 1]."""
    px, py = (g.ravel().astype(np.float32) + 0.5 for g in np.meshgrid(np.arange(SIZE), np.arange(SIZE)))
    images = np.empty((len(labels), SIZE * SIZE), dtype=np.float32)
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        seg = _segments(digit)
        for part in np.array_split(idx, max(1, math.ceil(len(idx) / chunk))):
            n = len(part)
            if n == 0:
                continue
            # Per image: wobble every endpoint, then rotate/shear/scale about the centre and shift.
            pts = seg[None] + rng.normal(0, 0.04, (n, *seg.shape))
            # Two short stray strokes per image make the task less trivial.
            pts = np.concatenate([pts, rng.uniform(0, 1, (n, 2, 1, 2)) + rng.normal(0, 0.15, (n, 2, 2, 2))], axis=1)
            angle = rng.uniform(-0.4, 0.4, n)
            shear = rng.uniform(-0.4, 0.4, n)
            scale = rng.uniform(0.5, 0.85, (n, 2))
            c, s = np.cos(angle), np.sin(angle)
            A = np.stack([np.stack([c, -s + shear * c], -1), np.stack([s, c + shear * s], -1)], -2) * scale[:, None, :]
            shift = 0.5 + rng.uniform(-0.1, 0.1, (n, 2))
            pts = np.einsum("nij,nsej->nsei", A, pts - 0.5) + shift[:, None, None, :]
            # Distance (in pixels) from every pixel centre to the nearest segment.
            pts = pts.astype(np.float32) * SIZE
            ax, ay = pts[:, :, 0, 0], pts[:, :, 0, 1]
            dx, dy = pts[:, :, 1, 0] - ax, pts[:, :, 1, 1] - ay
            inv_len2 = (1 / np.maximum(dx * dx + dy * dy, 1e-6))[:, None]
            apx = px[None, :, None] - ax[:, None]  # (n, pixels, segments)
            apy = py[None, :, None] - ay[:, None]
            t = np.clip((apx * dx[:, None] + apy * dy[:, None]) * inv_len2, 0, 1)
            apx -= t * dx[:, None]
            apy -= t * dy[:, None]
            d = np.sqrt(apx * apx + apy * apy)
            width = rng.uniform(0.8, 1.8, (n, 1))
            # A pen of half-width `width` with one pixel of anti-aliasing; the stray strokes fainter.
            ink = np.clip(width + 0.5 - d[..., :-2].min(-1), 0, 1)
            stray = np.clip(1.3 - d[..., -2:].min(-1), 0, 1) * rng.uniform(0, 0.8, (n, 1))
            images[part] = np.maximum(ink * rng.uniform(0.6, 1.0, (n, 1)), stray)
    images += rng.normal(0, 0.15, images.shape).astype(np.float32)
    return np.clip(images, 0, 1).reshape(-1, SIZE, SIZE, 1)


def make_dataset(n, seed):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, n)
    return draw_digits(labels, rng), labels.astype(np.int32)


# ---------------------------------------------------------------------------------------
# the network


class CNN(nn.Module):
    def __init__(self, channels=(16, 32), hidden=64):
        super().__init__()
        c1, c2 = channels
        self.features = nn.Sequential(
            nn.Conv2d(1, c1, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 28 -> 14
            nn.Conv2d(c1, c2, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2),  # 14 -> 7
        )
        self.classifier = nn.Sequential(nn.Linear(7 * 7 * c2, hidden), nn.ReLU(), nn.Linear(hidden, 10))

    def __call__(self, x):
        x = self.features(x)
        return self.classifier(x.reshape(x.shape[0], -1))


def loss_fn(model, x, y):
    return nn.losses.cross_entropy(model(x), y, reduction="mean")


def accuracy(model, images, labels, batch_size=500):
    """Fraction of ``images`` classified correctly, and the predictions."""
    preds = [mx.argmax(model(mx.array(images[i : i + batch_size])), axis=1) for i in range(0, len(images), batch_size)]
    preds = np.array(mx.concatenate(preds))
    return float((preds == labels).mean()), preds


# ---------------------------------------------------------------------------------------
# pictures


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


def plot_curves(path, losses, steps_per_epoch, accs):
    """Training loss per step and test accuracy (``accs[e]`` after ``e`` epochs)."""
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    steps = np.arange(1, len(losses) + 1)
    ax.plot(steps, losses, color="tab:blue", alpha=0.35, lw=0.8, label="train loss (per step)")
    k = max(1, min(20, len(losses) // 10))
    smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
    ax.plot(steps[k - 1 :], smooth, color="tab:blue", lw=1.5, label=f"train loss ({k}-step mean)")
    ax.set(xlabel="step", ylabel="cross-entropy", title="CNN on generated digits")
    ax.grid(alpha=0.3)
    acc_ax = ax.twinx()
    epochs = np.arange(len(accs))
    acc_ax.plot(steps_per_epoch * epochs, 100 * np.array(accs), "o-", color="tab:green", label="test accuracy")
    acc_ax.set(ylabel="test accuracy (%)", ylim=(0, 100))
    lines = ax.get_legend_handles_labels()[0] + acc_ax.get_legend_handles_labels()[0]
    ax.legend(lines, [line.get_label() for line in lines], loc="center right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def plot_examples(path, images, labels, preds, n=40, mistakes=10):
    """A sheet of test images with the model's answers: the first ones, then (up to
    ``mistakes``) wrong answers in red with the truth in brackets."""
    plt = pyplot()
    if plt is None:
        return False
    wrong = np.flatnonzero(preds != labels)[:mistakes]
    right = np.setdiff1d(np.arange(len(images)), wrong)[: n - len(wrong)]
    shown = np.concatenate([right, wrong])
    cols = 10
    rows = math.ceil(len(shown) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 0.9, rows * 1.05), squeeze=False)
    for ax, i in zip(axes.flat, shown):
        ax.imshow(images[i, :, :, 0], cmap="gray_r", vmin=0, vmax=1)
        ok = preds[i] == labels[i]
        ax.set_title(f"{preds[i]}" if ok else f"{preds[i]} ({labels[i]})", color="black" if ok else "red", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("test images and the model's answers (mistakes in red: answer (truth))", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------


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
    p.add_argument("--train-size", type=positive, help="training images (default 12000, --quick 800)")
    p.add_argument("--test-size", type=positive, help="test images (default 1000, --quick 300)")
    p.add_argument("--epochs", type=positive, help="passes over the training images (default 4, --quick 2)")
    p.add_argument("--batch-size", type=positive, default=64, help="images per step (default 64)")
    p.add_argument("--lr", type=positive_float, default=2e-3, help="peak learning rate (default 2e-3)")
    p.add_argument("--seed", type=int, default=0, help="seed of the data, the weights and the batch order")
    p.add_argument("--out", default="runs/cnn", help="output directory (default runs/cnn)")
    p.add_argument("--quick", action="store_true", help="little data and two short epochs (a few seconds)")
    args = p.parse_args(argv)
    for name, default, quick in (("train_size", 12000, 800), ("test_size", 1000, 300), ("epochs", 4, 2)):
        if getattr(args, name) is None:
            setattr(args, name, quick if args.quick else default)
    return args


def main(argv=None):
    args = parse_args(argv)
    from tqdm import tqdm

    if mx.cuda.is_available():
        mx.set_default_device(mx.gpu)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    t = time.perf_counter()
    train_x, train_y = make_dataset(args.train_size, seed=args.seed)
    test_x, test_y = make_dataset(args.test_size, seed=args.seed + TEST_SEED)
    print(f"oxmx {mx.__version__} on {mx.default_device()}")
    print(f"data: drew {len(train_x):,} training and {len(test_x):,} test digits (28 x 28) "
          f"in {time.perf_counter() - t:.1f} s")

    mx.random.seed(args.seed)
    model = CNN()
    steps_per_epoch = len(train_x) // args.batch_size
    if steps_per_epoch < 1:
        raise SystemExit("train_cnn: fewer training images than --batch-size")
    total = args.epochs * steps_per_epoch
    warmup = max(1, total // 20)
    schedule = optim.join_schedules(
        [optim.linear_schedule(0.0, args.lr, warmup), optim.cosine_decay(args.lr, max(1, total - warmup), args.lr / 20)],
        [warmup],
    )
    optimizer = optim.AdamW(learning_rate=schedule, weight_decay=1e-4)
    optimizer.init(model.trainable_parameters())
    n_params = sum(v.size for _, v in tree_flatten(model.parameters()))
    print(f"model: {n_params:,} parameters; {steps_per_epoch} steps of {args.batch_size} images per epoch")

    # One compiled step (forward, backward, AdamW update) that reads and updates the
    # model's and the optimizer's state, declared as its inputs and outputs.
    state = [model.state, optimizer.state]
    loss_and_grad = nn.value_and_grad(model, loss_fn)

    @partial(mx.compile, inputs=state, outputs=state)
    def train_step(x, y):
        loss, grads = loss_and_grad(model, x, y)
        optimizer.update(model, grads)
        return loss

    acc0, _ = accuracy(model, test_x, test_y)
    print(f"test accuracy before training: {100 * acc0:.1f}% (chance is 10%)")
    losses, accs = [], [acc0]
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    bar = tqdm(total=total * args.batch_size, unit="img", unit_scale=True, dynamic_ncols=True, mininterval=0.5)
    for epoch in range(args.epochs):
        bar.set_description(f"epoch {epoch + 1}/{args.epochs}")
        order = rng.permutation(len(train_x))
        for i in range(steps_per_epoch):
            idx = order[i * args.batch_size : (i + 1) * args.batch_size]
            loss = train_step(mx.array(train_x[idx]), mx.array(train_y[idx]))
            mx.eval(state, loss)
            losses.append(loss.item())
            bar.update(args.batch_size)
            bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        acc, preds = accuracy(model, test_x, test_y)
        accs.append(acc)
        train_loss = np.mean(losses[-steps_per_epoch:])
        bar.write(f"epoch {epoch + 1}/{args.epochs}: train loss {train_loss:.3f}, test accuracy {100 * acc:.1f}%")
    bar.close()
    elapsed = time.perf_counter() - t0

    weights, curves, sheet = out / "cnn.safetensors", out / "loss.png", out / "examples.png"
    model.save_weights(str(weights))
    plotted = plot_curves(curves, losses, steps_per_epoch, accs) and plot_examples(sheet, test_x, test_y, preds)
    rate = total * args.batch_size / elapsed
    print(f"trained {total} steps in {elapsed:.1f} s ({rate:,.0f} images/s) on {mx.default_device()}")
    print(f"test accuracy: {100 * acc0:.1f}% before training, {100 * accs[1]:.1f}% after the first epoch, "
          f"{100 * accs[-1]:.1f}% after the last")
    print(f"wrote {weights} (weights; model.load_weights reads them back)")
    if plotted:
        print(f"wrote {curves} (loss and accuracy)")
        print(f"wrote {sheet} (test images with the model's answers)")
    else:
        print("no pictures: matplotlib is not installed")


if __name__ == "__main__":
    main()
