"""Speed of meta-training, embedding, personalization and prediction, against yardsticks.

Prints one table: each measured figure, the reference it is compared with (measured in
the same run, on the same machine), their ratio, and the process's peak memory.

- meta-training: seconds per BLG outer iteration at the paper's settings (k=4 raters,
  S=5 steps, 80 support / 20 query images, 1280-d EfficientNet-Lite0-sized embeddings,
  head 1024-512-1) through ``MetaAestheticRegressor.fit``, against the plain loop of
  ``../shared/reference/naive_blg_loop.py`` (deep copy + Adam per task) on the same data
  sizes; also the package's hand-written step one task at a time instead of stacks
  of tasks (``MetaLearner.max_stacked = 1``), its autograd path
  (``MetaLearner.fused_head = False``) and the optional autograd loop over stacked
  tasks (``MetaLearner.stacked``, vmap). The loops are timed in
  alternating rounds, and each ratio is the median over rounds of the ratio within a
  round, so that a machine whose speed drifts during the run (shared cloud cores do,
  by 1.5x here) still gives fair ratios.
  Achieved GFLOP/s (multiply-adds of the forward and backward passes, counted from the
  layer sizes) are compared with a torch matmul of the same shapes, and the bytes Adam
  must move with a measured memory copy rate: Adam touches every weight several times
  per step, which bounds the loop from below however fast the matmuls are.
  A second floor times the loop's own matrix products (at their real shapes, batched
  over stacked tasks as the package runs them) and its fused Adam kernels alone,
  with nothing between them.
- embedding: images/s from JPEG files on disk to embeddings cached on disk, by one
  embedder (the backbone loaded once), against the bare backbone forward on
  already-decoded tensors at 224 px: with BatchNorm folded into its convolutions
  (what the embedder runs) in the embedder's forward batches (2 images per thread on
  a CPU) and in batches of 32, and as loaded in batches of 32, in alternating rounds
  (ratios: medians of the ratios within a round); one ``embed_images`` call, which
  also loads and folds the backbone; and the same with ``mixed_precision=True``
  (bfloat16 autocast), with how far its embeddings lie from float32's (relative
  norm of the difference, mean and largest over the images); and the time spent
  around the network (decoding, resizing,
  normalizing, cache writes: the embedding with the network replaced by a mean),
  which bounds the like-for-like ratio.
- personalization of one rater on 100 cached embeddings with the default fine-tuning
  (20 epochs; 80 steps of 25 images), wall time including skorch, fast path and
  skorch's autograd step, the floor of its steps' products and Adam kernels alone, and
  batches of 10 (200 steps, the previous default); one of its training steps against
  the same step of a tiny head, whose arithmetic is negligible (what launching the
  step's small kernels costs at any size); prediction of 10,000
  cached embeddings, against the head's products at the training steps' matmul rate
  (an estimate), against a floor -- the head's FLOPs at the fastest rate a lone
  float32 product reached in the run (a 2048 square, or the first layer at 4096 and
  10,000 rows), an empirical floor of float32 prediction, also set against the target --
  against skorch's ``DataLoader`` batching, and under bfloat16 autocast
  (``mixed_precision=True``) with how far its scores lie from float32's.
- task-vector personalization (``TaskVectorRegressor.personalize``, the defaults: 8
  sources, 100 coefficient steps) of one rater on 100 and on 10 cached embeddings,
  against the same with the first layer's weights recombined at every step instead
  of its products with the rater's images kept (``_keeps_first_layer``).

- with ``--whole-network``: one Adam step of EfficientNet-Lite0 + head in training
  mode on 80 and on 20 images at 224 px, and the outer iteration they add up to; one
  step on 80 and on 20 images under bfloat16 autocast.

Usage: ``python benchmarks/speed.py [--iterations 30] [--rounds 3] [--repeats 5]
[--images 256] [--whole-network] [--keep-freed-memory]``. With ``--keep-freed-memory``
glibc's malloc is tuned as the ``sklearn-piaa`` command tunes its own process (a
library user gets the same with ``MALLOC_MMAP_THRESHOLD_=33554432
MALLOC_TRIM_THRESHOLD_=268435456`` in the environment); the header says which.
The naive loop is read from ``../shared`` and skipped (n/a) when that is absent; the
embedding benchmark uses the photos there, or generated JPEGs of the same size.
"""

import argparse
import copy
import importlib.util
import os
import resource
import statistics
import sys
import tempfile
import time

import numpy as np
import torch
from scipy.stats import spearmanr
from sklearn.frozen import FrozenEstimator

import sklearn_piaa._task_vectors as task_vectors
from sklearn_piaa import (
    MetaAestheticRegressor,
    PersonalizedNet,
    TaskVectorRegressor,
    embed_images,
)
from sklearn_piaa._cli_common import keep_freed_memory
from sklearn_piaa._device import autocast
from sklearn_piaa._features import ImageEmbedder
from sklearn_piaa.meta import BLG
from sklearn_piaa.nn import (
    AestheticHead,
    AestheticLoss,
    AestheticNet,
    HeadGradient,
    adam_step,
    load_backbone,
)
from sklearn_piaa.nn.head_grad import _linear

HERE = os.path.dirname(os.path.abspath(__file__))
SHARED = os.path.join(HERE, "..", "..", "shared")
NAIVE = os.path.join(SHARED, "reference", "naive_blg_loop.py")
PHOTOS = os.path.join(SHARED, "data", "photos")
DIM, HIDDEN, K, STEPS, N_S, N_Q = 1280, (1024, 512), 4, 5, 80, 20


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _median_time(fn, repeats, device="cpu"):
    """Median wall seconds of ``fn()``; on a GPU, until its queued work has finished."""
    times = []
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def print_table(rows):
    """Print ``(measured, value, reference, reference value, ratio, unit)`` rows."""
    print(f"\n{'measured':<56}{'value':>10}   {'reference':<58}{'value':>9}  ratio")
    for name, value, ref, ref_value, ratio, unit in rows:
        ref_text = "n/a" if ref_value is None else f"{ref_value:.4g}"
        ratio_text = "n/a" if ratio is None else f"{ratio:.2f} {unit}"
        print(f"{name:<56}{value:>10.4g}   {ref:<58}{ref_text:>9}  {ratio_text}")


SIZES = list(zip((DIM, *HIDDEN), (*HIDDEN, 1)))  # (in, out) of the head's layers


def flops_per_row():
    """Multiply-add FLOPs of one training step per row: forward, weight and input
    gradients (none for the network's input)."""
    forward = 2 * sum(i * o for i, o in SIZES)
    return 2 * forward + 2 * sum(i * o for i, o in SIZES[1:])


def flops_per_iteration():
    """Multiply-add FLOPs of one outer iteration (forward + backward, all tasks)."""
    return K * STEPS * (N_S + N_Q) * flops_per_row()


def bytes_adam_per_iteration():
    """Bytes Adam reads and writes per outer iteration (param, grad, 2 moments)."""
    n_params = sum(i * o + o for i, o in SIZES)
    # read p, g, m, v; write p, m, v: 7 float32 arrays per update.
    return K * 2 * STEPS * n_params * 7 * 4


def step_matmul_seconds(n_rows, repeats, steps=50):
    """Seconds of one head training step's matrix products alone, on ``n_rows`` rows.

    The products the forward and backward passes of the 1280-1024-512-1 head need
    (no gradient for the input), at their real shapes and in the layout the package
    uses for that many rows, and nothing else; their rate at 80 rows is the "torch
    matmul, same shapes" yardstick.
    """
    ws = [torch.randn(o, i) for i, o in SIZES]
    bs = [torch.randn(o) for _, o in SIZES]
    xs = [torch.randn(n_rows, i) for i, _ in SIZES]
    gs = [torch.randn(n_rows, o) for _, o in SIZES]
    outs = [torch.empty(o, i) for i, o in SIZES]

    def run():
        for _ in range(steps):
            for x, w, b in zip(xs[:-1], ws, bs):  # the hidden layers, laid out as trained
                _linear(x, w, b)
            torch.addmm(bs[-1], xs[-1], ws[-1].t())
            for k, (x, g, w, out) in enumerate(zip(xs, gs, ws, outs)):
                torch.mm(g.t(), x, out=out)
                if k:
                    g @ w
    run()
    return _median_time(run, repeats) / steps


def stacked_step_matmul_seconds(n_rows, copies, repeats, steps=50):
    """Seconds of one step's matrix products for ``copies`` stacked heads, alone.

    The batched products ``nn.StackedHeadGradient`` runs for a step of ``copies`` tasks
    on ``n_rows`` rows each, activations laid out ``(copies, features, rows)`` as there.
    """
    ws = [torch.randn(copies, o, i) for i, o in SIZES]
    bs = [torch.randn(copies, o, 1) for _, o in SIZES]
    hs = [torch.randn(copies, i, n_rows) for i, _ in SIZES]
    gs = [torch.randn(copies, o, n_rows) for _, o in SIZES]
    outs = [torch.empty(copies, o, i) for i, o in SIZES]

    def run():
        for _ in range(steps):
            for h, w, b in zip(hs, ws, bs):
                torch.bmm(w, h).add_(b)
            for k, (h, g, w, out) in enumerate(zip(hs, gs, ws, outs)):
                torch.bmm(g, h.transpose(1, 2), out=out)
                if k:
                    torch.bmm(w.transpose(1, 2), g)
    run()
    return _median_time(run, repeats) / steps


def best_matmul_rate(repeats):
    """The fastest float32 product rate seen, GFLOP/s, and the shape that gave it.

    Lone ``torch.mm`` products, each timed as the median of ``repeats``: a 2048 square
    (about the largest rate these CPUs reach) and the prediction's first layer at 4096
    and 10,000 rows. The head's FLOPs at this rate are an empirical floor of float32
    prediction: measured, not proven, as fast as the CPU's float32 arithmetic went.
    """
    best = (0.0, "")
    for n, k, m in ((2048, 2048, 2048), (4096, DIM, HIDDEN[0]), (10_000, DIM, HIDDEN[0])):
        a, b = torch.randn(n, k), torch.randn(k, m)
        out = torch.empty(n, m)
        torch.mm(a, b, out=out)
        rate = 2 * n * k * m / _median_time(lambda: torch.mm(a, b, out=out), repeats) / 1e9
        best = max(best, (rate, f"{n} x {k} x {m}"))
    return best


def adam_kernel_seconds(repeats, steps=50, copies=None):
    """Seconds of one fused Adam step over the head's parameters, kernel alone
    (``copies`` stacked heads' parameters if given)."""
    lead = () if copies is None else (copies,)
    params = [torch.randn(*lead, o, i) for i, o in SIZES] + \
        [torch.randn(*lead, o) for _, o in SIZES]
    for p in params:
        p.grad = torch.randn_like(p)
    opt = torch.optim.Adam(params, lr=1e-4, fused=True)
    adam_step(opt)

    def run():
        for _ in range(steps):
            adam_step(opt)
    return _median_time(run, repeats) / steps


def head_step_seconds(n_in, hidden, n_rows, repeats, steps=80):
    """Seconds of one hand-written head training step (forward, backward, Adam) on
    ``n_rows`` rows, for a head ``n_in`` -> ``hidden`` -> 1 with the paper's dropout.

    On a tiny head (16-12-8) the arithmetic is negligible: what is left is the cost of
    launching the step's ~70 small kernels from Python, paid at every size.
    """
    head = AestheticHead(n_in, hidden, dropout=0.5).train()
    grad, loss = HeadGradient(head), AestheticLoss("mse")
    opt = torch.optim.Adam(head.parameters(), lr=1e-5, fused=True)
    x, y = torch.randn(n_rows, n_in), torch.rand(n_rows) * 4 + 1

    def run():
        for _ in range(steps):
            grad.loss_backward(x, y, loss)
            adam_step(opt)
    run()
    return _median_time(run, repeats) / steps


def copy_gbytes(repeats):
    """GB/s of a large float32 copy (read + write counted)."""
    a, b = torch.empty(64 * 2**20 // 4), torch.empty(64 * 2**20 // 4)
    a.normal_()
    # written once first: a fresh buffer's first copy also pays for mapping its pages
    # (2.2-2.5 GB/s measured at --repeats 1, against 18 at 5)
    b.copy_(a)
    seconds = _median_time(lambda: b.copy_(a), repeats)
    return 2 * a.numel() * 4 / seconds / 1e9


def _rating_data(n_users=200, n_images=100, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.randn(n_users * n_images, DIM).astype(np.float32)
    y = rng.uniform(1, 5, n_users * n_images).astype(np.float32)
    return X, y, np.repeat(np.arange(n_users), n_images)


_RATINGS = None


def meta_seconds_per_iteration(iterations, mode="fast"):
    """s/iteration of ``MetaAestheticRegressor.fit``: "fast" (the default path, tasks
    stacked), "per-task" (the same hand-written step, one task at a time), "plain"
    (autograd, a new Adam per task) or "stacked" (autograd through vmap over tasks)."""
    global _RATINGS
    if _RATINGS is None:
        _RATINGS = _rating_data()
    X, y, groups = _RATINGS
    old = BLG.stacked, BLG.fused_head, BLG.max_stacked
    BLG.stacked, BLG.fused_head = mode == "stacked", mode in ("fast", "per-task")
    if mode == "per-task":
        BLG.max_stacked = 1
    try:
        meta = MetaAestheticRegressor(backbone=None, hidden_sizes=HIDDEN, n_iterations=2,
                                      random_state=0).fit(X, y, groups=groups)  # warm-up
        meta.set_params(n_iterations=iterations).fit(X, y, groups=groups)
    finally:
        BLG.stacked, BLG.fused_head, BLG.max_stacked = old
    return meta.fit_time_ / iterations


def naive_seconds_per_iteration(iterations):
    if not os.path.isfile(NAIVE):
        return None
    spec = importlib.util.spec_from_file_location("naive_blg_loop", NAIVE)
    naive = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(naive)
    torch.manual_seed(0)
    features = torch.randn(200, 100, DIM)
    scores = torch.rand(200, 100) * 4 + 1
    head = naive.make_head(DIM).train()
    naive.meta_train(head, features, scores, 2)
    t0 = time.perf_counter()
    naive.meta_train(head, features, scores, iterations)
    return (time.perf_counter() - t0) / iterations


def meta_training_rounds(iterations, rounds):
    """Per-round s/iteration of each loop, the loops timed in alternating rounds."""
    times = {"naive": [], "fast": [], "per-task": [], "plain": [], "stacked": []}
    per_round = max(2, iterations // rounds)
    for _ in range(rounds):
        times["naive"].append(naive_seconds_per_iteration(per_round))
        for mode in ("fast", "per-task", "plain", "stacked"):
            times[mode].append(meta_seconds_per_iteration(per_round, mode))
    return times


def paired(times, num, den):
    """Median time of ``num`` and the median over rounds of ``num / den`` (same round)."""
    if None in times[num] or None in times[den]:
        return None, None
    ratios = [a / b for a, b in zip(times[num], times[den])]
    return statistics.median(times[num]), statistics.median(ratios)


def _jpeg_files(n, tmp):
    if os.path.isdir(PHOTOS):
        files = sorted(os.path.join(PHOTOS, f) for f in os.listdir(PHOTOS)
                       if f.lower().endswith((".jpg", ".jpeg")))
        return files[:n], "../shared photos (longest side 320 px)"
    from PIL import Image

    rng = np.random.RandomState(0)
    files = []
    for i in range(n):
        path = os.path.join(tmp, f"{i}.jpg")
        base = rng.rand(8, 10, 3) * 255
        img = Image.fromarray(base.astype(np.uint8)).resize((320, 256), Image.BICUBIC)
        img.save(path, quality=90)
        files.append(path)
    return files, "generated 320x256 JPEGs"


def embedding_rates(n_images, repeats):
    """Images/s: embedding from files and the bare forwards, in alternating rounds.

    Each round times the bare forward of the network the embedder runs (BatchNorm
    folded, channels-last) in its own forward batches (``ImageEmbedder._forward_batch()``
    images on a CPU) and in batches of 32 (the issue's reference), and the backbone as
    loaded in batches of 32, each on ``n_images`` random tensors; then one embedder
    (loaded once, batches of 64 as ``embed_images`` and the estimators default to)
    embedding the ``n_images`` files into a fresh ``cache_dir``, in float32 and under
    bfloat16. Ratios are the medians over rounds of the ratios within a round. Also one
    ``embed_images`` call, which loads and folds the backbone first (a fixed cost,
    about 0.2 s, that a large data set spreads thin). And the time around the
    network: the same embedding with the network replaced by a channel mean (no
    arithmetic to speak of), i.e. decoding, resizing, normalizing, checks and cache
    writes, in ms per image; with the folded forward's ms per image it bounds the
    like-for-like ratio from above: ``forward / (forward + around)``.
    """
    embedders = {mixed: ImageEmbedder(load_backbone("efficientnet_lite0"),
                                      torch.device("cpu"), 64, mixed_precision=mixed)
                 for mixed in (False, True)}
    backbone = load_backbone("efficientnet_lite0").eval().to(memory_format=torch.channels_last)
    folded = embedders[False]._inference_net()
    step = embedders[False]._forward_batch()
    batches = {n: torch.randn(n, 3, 224, 224).contiguous(memory_format=torch.channels_last)
               for n in (step, 32)}

    def forward_rate(net, n):
        count = max(1, n_images // n)
        with torch.inference_mode():
            t0 = time.perf_counter()
            for _ in range(count):
                net(batches[n])
            return n * count / (time.perf_counter() - t0)

    with tempfile.TemporaryDirectory() as tmp:
        files, source = _jpeg_files(n_images, tmp)
        for e in embedders.values():  # warm-up: folding, first-call allocations
            e.transform(files[:32])
        for n in batches:
            forward_rate(folded, n)
        forward_rate(backbone, 32)
        rates = {k: [] for k in ("folded", "folded 32", "loaded 32", False, True, "around")}
        embedded = {}
        around = ImageEmbedder(embedders[False].backbone, torch.device("cpu"), 64)
        width = around.backbone.out_features
        around._folded = lambda x: x.mean(dim=(2, 3)).repeat(1, -(-width // 3))[:, :width]
        for r in range(max(1, repeats)):
            rates["folded"].append(forward_rate(folded, step))
            rates["folded 32"].append(forward_rate(folded, 32))
            rates["loaded 32"].append(forward_rate(backbone, 32))
            for mixed, e in embedders.items():
                e._memory.clear()  # the memo of embedded images: embed them again
                e.cache_dir = os.path.join(tmp, f"cache{r}-{mixed}")
                t0 = time.perf_counter()
                embedded[mixed] = e.transform(files)
                rates[mixed].append(len(files) / (time.perf_counter() - t0))
            around._memory.clear()
            around.cache_dir = os.path.join(tmp, f"around{r}")
            t0 = time.perf_counter()
            around.transform(files)
            rates["around"].append(len(files) / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        embed_images(files, cache_dir=os.path.join(tmp, "call"))
        call = len(files) / (time.perf_counter() - t0)

    def ratio(num, den):
        return statistics.median(a / b for a, b in zip(rates[num], rates[den]))

    med = {k: statistics.median(v) for k, v in rates.items()}
    # how far bfloat16 moves each image's embedding, relative to its float32 norm
    full, half = (np.asarray(embedded[m], dtype=np.float64) for m in (False, True))
    moved = np.linalg.norm(half - full, axis=1) / np.linalg.norm(full, axis=1)
    return {"embed": med[False], "bf16": med[True], "step": step, "folded": med["folded"],
            "folded 32": med["folded 32"], "loaded 32": med["loaded 32"],
            "of folded": ratio(False, "folded"), "of folded 32": ratio(False, "folded 32"),
            "of loaded 32": ratio(False, "loaded 32"), "bf16 x": ratio(True, False),
            "call": call, "call of folded": call / med["folded"], "source": source,
            "n files": len(files),
            "around ms": 1e3 / med["around"], "folded ms": 1e3 / med["folded"],
            "bound": statistics.median(
                (1 / f) / (1 / f + 1 / a) for f, a in zip(rates["folded"], rates["around"])),
            "by round": rates, "bf16 moved": (moved.mean(), moved.max())}


def whole_network_step(n_images, repeats=2, mixed_precision=False, device="cpu",
                       backbone="efficientnet_lite0"):
    """Seconds of one Adam step of the whole network (EfficientNet-Lite0 + head) on
    ``n_images`` decoded images at 224 px, on ``device`` (synchronized on a GPU)."""
    backbone = load_backbone(backbone)
    size = backbone.input_size
    net = AestheticNet(backbone, AestheticHead(backbone.out_features)).train()
    net = net.to(device, memory_format=torch.channels_last)
    opt = torch.optim.Adam(net.parameters(), lr=1e-5, fused=True)
    x = torch.randn(n_images, 3, size, size, device=device)
    x = x.contiguous(memory_format=torch.channels_last)
    y = torch.rand(n_images, device=device) * 4 + 1

    def step():
        opt.zero_grad(set_to_none=True)
        with autocast(device, mixed_precision):
            pred = net(x)
        loss = ((pred.float().reshape(-1) - y) ** 2).mean()
        loss.backward()
        opt.step()
    step()
    return _median_time(step, repeats, device)


def personalize_and_predict(repeats):
    """Median seconds: personalize (the defaults, skorch's autograd step, batches of
    10); the default's steps and batch size; predict 10k (float32 by slicing, by
    skorch's DataLoader, and under bfloat16), and how far the bfloat16 predictions lie
    from the float32 ones."""
    X, y, groups = _rating_data(n_users=40)
    meta = MetaAestheticRegressor(backbone=None, hidden_sizes=HIDDEN, n_iterations=5,
                                  random_state=0).fit(X, y, groups=groups)
    Xu, yu = X[:100], y[:100]
    meta.personalize(Xu, yu)  # warm-up
    settings = {"default": {}, "autograd": {}, "batch 10": {"batch_size": 10}}
    times = {name: [] for name in settings}
    old = PersonalizedNet.fused_head
    try:
        for _ in range(repeats):  # alternating, as for meta-training
            for name, params in settings.items():
                PersonalizedNet.fused_head = name != "autograd"
                t0 = time.perf_counter()
                meta.personalize(Xu, yu, random_state=0, **params)
                times[name].append(time.perf_counter() - t0)
    finally:
        PersonalizedNet.fused_head = old
    times = {name: statistics.median(t) for name, t in times.items()}
    net = meta.personalize(Xu, yu, random_state=0)
    steps = sum(len(epoch["batches"]) for epoch in net.history)
    X10k = np.random.RandomState(1).randn(10_000, DIM).astype(np.float32)
    predicted, predict = {}, {}
    for setting in ("float32", "DataLoader", "bfloat16"):
        net.set_params(mixed_precision="inference" if setting == "bfloat16" else False)
        PersonalizedNet.array_batches = setting != "DataLoader"
        try:
            predicted[setting] = net.predict(X10k)
            predict[setting] = _median_time(lambda: net.predict(X10k), repeats)
        finally:
            PersonalizedNet.array_batches = True
    full, half = predicted["float32"], predicted["bfloat16"]
    span = float(np.ptp(y))
    agreement = (np.abs(half - full).max() / span, spearmanr(full, half)[0])
    return times, (steps, net.batch_size), predict, agreement, (meta, Xu, yu)


def task_vector_personalize(meta, X, y, repeats, n_sources=8):
    """Median seconds of ``TaskVectorRegressor.personalize`` on the first 100 and 10 rows
    of ``X``: as the package runs it, and with the first layer recombined at each step.
    The sources are the prior with small random changes (timing does not depend on
    what they learned)."""
    gen = torch.Generator().manual_seed(0)
    sources = []
    for _ in range(n_sources):
        module = copy.deepcopy(meta.prior_net_.module_)
        with torch.no_grad():
            for p in module.parameters():
                p.add_(0.01 * torch.randn(p.shape, generator=gen))
        sources.append(module)
    tv = TaskVectorRegressor(FrozenEstimator(meta), sources=sources, random_state=0).fit()
    kept = task_vectors._keeps_first_layer
    times = {}
    for n in (100, 10):
        tv.personalize(X[:n], y[:n])  # warm-up
        runs = {"kept": [], "recombined": []}
        try:
            for _ in range(repeats):
                for name in runs:
                    task_vectors._keeps_first_layer = (
                        kept if name == "kept" else lambda module, x: False)
                    t0 = time.perf_counter()
                    tv.personalize(X[:n], y[:n], random_state=0)
                    runs[name].append(time.perf_counter() - t0)
        finally:
            task_vectors._keeps_first_layer = kept
        times[n] = {name: statistics.median(t) for name, t in runs.items()}
    return times


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=30,
                    help="outer iterations timed per loop (split over --rounds)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="alternating rounds of the meta-training loops")
    ap.add_argument("--repeats", type=int, default=5, help="repeats of the short timings")
    ap.add_argument("--images", type=int, default=256, help="images for the embedding rate")
    ap.add_argument("--whole-network", action="store_true",
                    help="also time whole-network training steps (about a minute)")
    ap.add_argument("--keep-freed-memory", action="store_true",
                    help="tune glibc's malloc as the sklearn-piaa command does for its "
                         "process (sklearn_piaa._cli_common.keep_freed_memory)")
    args = ap.parse_args(argv)
    tuned = args.keep_freed_memory and keep_freed_memory()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs; malloc "
          f"{'tuned as the command line tunes it' if tuned else 'as the process found it'}",
          flush=True)
    rows = []
    mm_s = {n: step_matmul_seconds(n, args.repeats) for n in (N_S, N_Q)}
    # GFLOP/s of an iteration's products: the 80-row and the (slower) 20-row steps'
    mm = flops_per_row() * (N_S + N_Q) / (mm_s[N_S] + mm_s[N_Q]) / 1e9
    bw = copy_gbytes(args.repeats)
    flops = flops_per_iteration()
    adam_bytes = bytes_adam_per_iteration()
    meta = meta_training_rounds(args.iterations, args.rounds)
    # Per-round times first: how much the machine drifted during the run.
    for mode, times in meta.items():
        shown = ", ".join("n/a" if t is None else f"{t:.3f}" for t in times)
        print(f"meta-training s/iteration by round, {mode:<8}{shown}", flush=True)
    ours = statistics.median(meta["fast"])
    naive, naive_ratio = paired(meta, "naive", "fast")
    per_task, per_task_ratio = paired(meta, "per-task", "fast")
    plain, plain_ratio = paired(meta, "plain", "fast")
    stacked, stacked_ratio = paired(meta, "stacked", "fast")
    rows.append(("BLG meta-training, s/iteration (paper sizes)", ours,
                 "naive loop (../shared/reference)", naive, naive_ratio, "x faster"))
    rows.append(("  same, one task at a time (max_stacked=1)", per_task,
                 "package default (tasks stacked)", ours, per_task_ratio, "x slower"))
    rows.append(("  same, autograd path (fused_head=False)", plain,
                 "package default (hand-written backward)", ours, plain_ratio, "x slower"))
    rows.append(("  same, autograd through vmap (MetaLearner.stacked)", stacked,
                 "package default", ours, stacked_ratio, "x slower"))
    rows.append(("  achieved GFLOP/s", flops / ours / 1e9,
                 "torch matmul, same shapes (80 and 20 rows)", mm,
                 flops / ours / 1e9 / mm, "of matmul"))
    floor = flops / mm / 1e9 + adam_bytes / bw / 1e9
    # an estimate, not a bound: fused Adam on cache-sized arrays beats the copy rate
    rows.append(("  s/iteration", ours, "estimate: matmuls at that rate + Adam bytes at "
                 f"{bw:.1f} GB/s", floor, floor / ours, "of estimate"))
    adam_s = adam_kernel_seconds(args.repeats)
    # the products and Adam kernels of the stacked steps, as the default path runs them
    copies = min(K, BLG.max_stacked)
    step_floor = STEPS * -(-K // copies) * (
        stacked_step_matmul_seconds(N_S, copies, args.repeats)
        + stacked_step_matmul_seconds(N_Q, copies, args.repeats)
        + 2 * adam_kernel_seconds(args.repeats, copies=copies))
    rows.append(("  s/iteration", ours, "floor: its matmuls and Adam kernels alone, timed",
                 step_floor, step_floor / ours, "of floor"))
    if naive is not None:
        rows.append(("  naive loop, s/iteration", naive, "the same floor", step_floor,
                     step_floor / naive, "of floor"))
    er = embedding_rates(args.images, args.repeats)
    step = er["step"]
    for name, key in (("embedding, float32", False), ("embedding, bfloat16", True),
                      (f"bare forward, folded, {step}", "folded"),
                      ("bare forward, folded, 32", "folded 32"),
                      ("bare forward, as loaded, 32", "loaded 32"),
                      ("around the network only", "around")):
        shown = ", ".join(f"{v:.1f}" for v in er["by round"][key])
        print(f"images/s by round, {name:<28}{shown}", flush=True)
    # like for like first: the network the embedder runs, in the batches it runs
    rows.append((f"embedding, images/s ({er['source']})", er["embed"],
                 f"bare forward, BatchNorm folded (what it runs), batch {step}",
                 er["folded"], er["of folded"], "of bare"))
    rows.append(("  same", er["embed"], "bare forward, BatchNorm folded, batch 32",
                 er["folded 32"], er["of folded 32"], "of bare"))
    rows.append(("  same", er["embed"], "bare backbone forward as loaded, batch 32",
                 er["loaded 32"], er["of loaded 32"], "of bare"))
    rows.append((f"  one embed_images call on {er['n files']} (loads the backbone)",
                 er["call"], f"bare forward, BatchNorm folded, batch {step}", er["folded"],
                 er["call of folded"], "of bare"))
    rows.append(("  same, mixed_precision=True (bfloat16)", er["bf16"], "float32 embedding",
                 er["embed"], er["bf16 x"], "x faster"))
    rows.append(("  bfloat16 embeddings: mean |diff| / |float32|", er["bf16 moved"][0],
                 "at most", er["bf16 moved"][1], None, ""))
    rows.append(("  time around the network, ms/image", er["around ms"],
                 f"bare forward, BatchNorm folded, batch {step}, ms/image", er["folded ms"],
                 er["bound"], "bound on ratio"))
    pers_t, (steps, batch), pred, (max_dev, rank_corr), fitted = personalize_and_predict(
        args.repeats)
    pers = pers_t["default"]
    rows.append((f"personalize 100 embeddings, 20 epochs ({steps} steps of {batch}), s",
                 pers, "target", 0.3, 0.3 / pers, "x target"))
    rows.append(("  same", pers, "skorch's autograd step (fused_head=False)",
                 pers_t["autograd"], pers_t["autograd"] / pers, "x faster"))
    # Each step's products and one Adam kernel, nothing else.
    pers_floor = steps * (step_matmul_seconds(batch, args.repeats) + adam_s)
    rows.append(("  same", pers, f"floor: {steps} steps' matmuls and Adam kernels, timed",
                 pers_floor, pers_floor / pers, "of floor"))
    rows.append(("  same", pers, "batches of 10 (200 steps, the previous default)",
                 pers_t["batch 10"], pers_t["batch 10"] / pers, "x faster"))
    step_paper = head_step_seconds(DIM, HIDDEN, batch, args.repeats)
    step_tiny = head_step_seconds(16, (12, 8), batch, args.repeats)
    rows.append((f"  one of its steps (hand-written, {batch} rows), ms", step_paper * 1e3,
                 "the same step of a 16-12-8 head (kernel launches), ms", step_tiny * 1e3,
                 step_tiny / step_paper, "of it"))
    pred_floor = 10_000 * 2 * sum(i * o for i, o in SIZES) / mm / 1e9
    p32 = pred["float32"]
    rows.append(("predict 10,000 embeddings, s", p32, "target", 0.1, 0.1 / p32, "x target"))
    # an estimate: 4096-row batches run their products faster than the training steps'
    rows.append(("  same", p32, "estimate: the head's matmuls at the steps' matmul rate",
                 pred_floor, pred_floor / p32, "of estimate"))
    peak, shape = best_matmul_rate(args.repeats)
    print(f"fastest lone float32 product: {peak:.1f} GFLOP/s ({shape})", flush=True)
    pred_bound = 10_000 * 2 * sum(i * o for i, o in SIZES) / peak / 1e9
    rows.append(("  same", p32, f"floor: its FLOPs at {peak:.0f} GFLOP/s (best lone "
                 "float32 product)", pred_bound, pred_bound / p32, "of floor"))
    rows.append(("  target", 0.1, "that floor", pred_bound, pred_bound / 0.1,
                 "of target"))
    rows.append(("  same", p32, "skorch's DataLoader (array_batches=False)",
                 pred["DataLoader"], pred["DataLoader"] / p32, "x faster"))
    p16 = pred["bfloat16"]
    rows.append(("  same, mixed_precision=True (bfloat16)", p16, "target", 0.1, 0.1 / p16,
                 "x target"))
    rows.append(("  bfloat16 vs float32 scores: max |diff| / range", max_dev,
                 "SROCC between the two", rank_corr, None, ""))
    tv = task_vector_personalize(*fitted, args.repeats)
    for n in (100, 10):
        name = (f"task vectors: personalize {n} embeddings (8 sources, 100 steps), s"
                if n == 100 else f"  same, {n} embeddings")
        rows.append((name, tv[n]["kept"], "the first layer recombined at each step",
                     tv[n]["recombined"], tv[n]["recombined"] / tv[n]["kept"], "x faster"))
    if args.whole_network:
        s80, s20 = whole_network_step(N_S), whole_network_step(N_Q)
        per_it = K * STEPS * (s80 + s20)
        rows.append(("whole network: one Adam step on 80 images, s", s80,
                     "one step on 20 images, s", s20, None, ""))
        rows.append(("whole network: its 40 steps' arithmetic (k=4, S=5), s", per_it,
                     "head-only outer iteration, s", ours, per_it / ours, "x slower"))
        for n, fp32 in ((N_S, s80), (N_Q, s20)):
            bf16 = whole_network_step(n, mixed_precision=True)
            rows.append((f"  one step on {n} images, mixed_precision=True, s", bf16,
                         "float32", fp32, fp32 / bf16, "x faster"))
    print_table(rows)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak memory of this benchmark process, all sections (max RSS) {peak:.0f} MiB; "
          "FLOPs per iteration "
          f"{flops / 1e9:.1f} G; Adam traffic per iteration {adam_bytes / 1e9:.2f} GB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
