"""Streaming training data from disk (data_feed stream, issue #24) against the resident epoch.

    python scripts/bench_stream.py                    # CPU parts 1-3 -> results/stream.{json,md} (~20-35 min, 37 GB disk)
    python scripts/bench_stream.py --parts 1,3        # only the MNIST parts (~3 min, 0.2 GB disk)
    python scripts/bench_stream.py --big-gb 40        # part 2 with a larger set (needs --big-gb + 5 GB free)
    python scripts/bench_stream.py --gpu              # part 4 -> results/stream_gpu.{json,md} (needs a GPU)
    python scripts/bench_stream.py --smoke            # every part's code at tiny sizes -> /tmp/jaxmlp_stream_smoke.*

Every time is an epoch's (compiles and data writing outside it), waited for with
block_until_ready, after a warm-up epoch, median of --epochs-timed (3) epochs, the ways compared
interleaved in the same process; before each part the script waits (up to 2 minutes) for other
processes to leave the CPUs idle and records the cores they used meanwhile (this VM is shared).

1. Page cache. MNIST 784-512-512-10 relu, batch 128, Adam, 60,000 training rows: data_feed
   resident (the in-memory Dataset on the device, one compiled epoch) against data_feed stream
   from `npy:DIR` shards of the same rows (read once beforehand, so they are in the page cache;
   chunks of k steps gathered by a worker thread while the last chunk runs). Both runs train the
   same steps on the same minibatches: their params after the timed epochs must be bit-identical.
   Floor: the epoch's FLOPs (6 N sum d_in d_out) at the jnp.matmul rate measured here.
   Goal: streamed >= 0.9x the resident examples/s.
2. Larger than memory. A synthetic float32 set of --big-gb GB (default 32 GB; this VM has 24 GiB
   of RAM) for each width D of --big-widths (default 1024: a row is 4 KiB, one page; and 8192:
   32 KiB), labels from a fixed random linear teacher, written chunk by chunk with ShardWriter
   into a temporary directory (refused when the disk has less than its size + 5 GB free; deleted
   afterwards, also on failure or Ctrl-C), one set at a time. Model D-256-10 relu, batch 128,
   Adam (1.6 MFLOP per example at D = 1024, 12.6 at 8192), so on 2 cores the one epoch takes
   minutes, not hours (the script logs its estimate from (b) first). A shuffled epoch reads its
   rows at random: narrow rows ask the disk for many small reads, wide rows for fewer large ones.
   (a) the disk's sequential read rate: shard files read front to back in 8 MiB reads after
       fsync + posix_fadvise(DONTNEED) dropped them from the page cache; and, for the record, its
       random 4 KiB read rate at the queue depth ShardSet.rows keeps (32 threads of os.pread):
       a shuffled epoch reads random rows, so that rate is the streamed epoch's real ceiling;
   (b) the resident compute rate: the same config on an in-memory subset of the same shape
       (--subset-rows, 2^18 rows), median epochs;
   (c) one streamed epoch over the whole set, in a child process, after dropping the shards from
       the page cache: wall time, examples/s, bytes/s delivered and read from the disk
       (/proc/<pid>/io read_bytes), and the child's peak RSS (VmHWM; mapped file pages count
       until `ShardSet` madvises them away).
   Goals: peak RSS <= 4 GB, and >= 0.9x the resident compute rate -- or, where the disk is the
   bound (the resident rate needs more bytes/s than the disk reads sequentially), >= 0.8x the
   disk's sequential rate in delivered bytes/s. The table says which applies.
3. Wide batches. MNIST 784-512-512-10 streamed from npy shards at batch 8192 and 16384 (chunks of
   CHUNK_BYTES = 64 MiB hold 2 and 1 steps: ~51 MB each): the device idles where the streamed
   epoch takes longer than the same compiled chunk programs run back to back on chunks already
   gathered and placed on the device. Goal: (streamed - device only) / streamed <= 10%.
4. GPU (--gpu): parts 1 and 3 on the GPU, plus the host-to-device copy rate measured here
   (jax.device_put of a 256 MiB float32 array, GB/s).

--smoke runs every part (4 with the CPU as the device) at tiny sizes, in well under 2 minutes.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from _bench import (REPO, block, cpu_snapshot, environment, foreign_cores, interleaved_medians, load_averages, log,
                    markdown_table, median_time, mlp_train_flops, repo_path, time_call, wait_for_idle_cpu,
                    write_results)
from jaxmlp.data.shardset import READERS

GB = 1e9
FULL = dict(n_samples=None, hidden="512,512", wide_batches="8192,16384", big_gb=32.0, big_widths="1024,8192",
            big_hidden="256", subset_rows=1 << 18, epochs_timed=3, name="stream", idle_wait_s=120, window_s=5.0,
            seq_read_gb=4.0, random_read_s=5.0, matmul_n=2048, copy_mib=256, reader_chunks=8)
SMOKE = dict(n_samples=4096, hidden="32,32", wide_batches="512,1024", big_gb=0.03, big_widths="256,512", big_hidden="32",
             subset_rows=4096, epochs_timed=2, name="/tmp/jaxmlp_stream_smoke", idle_wait_s=0, window_s=0.5,
             seq_read_gb=0.02, random_read_s=0.3, matmul_n=256, copy_mib=16, reader_chunks=2)
SPARE_DISK = 5 * GB  # what part 2 leaves free on the disk beyond its set
SHARD_BYTES = 256 << 20  # part 2's shards: 65536 rows at D = 1024
GOALS = {"page_cache": 0.9, "rss_gb": 4.0, "compute": 0.9, "disk": 0.8, "idle": 0.10}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="1,2,3", help="CPU parts to run [1,2,3]")
    parser.add_argument("--gpu", action="store_true", help="part 4 (needs a GPU)")
    parser.add_argument("--smoke", action="store_true", help="every part at tiny sizes; writes only under /tmp")
    parser.add_argument("--data-dir", default="../shared/data/mnist")
    parser.add_argument("--work-dir", default=None, help="where temporary shards go [the repository's parent]")
    parser.add_argument("--big-gb", type=float, default=None, help="part 2: the set's size in GB [32]")
    parser.add_argument("--big-hidden", default=None, help="part 2: hidden widths [256]")
    parser.add_argument("--big-widths", default=None, help="part 2: the rows' widths D, a set of each [1024,8192]")
    parser.add_argument("--epochs-timed", type=int, default=None, help="timed epochs per way [3]")
    parser.add_argument("--child-stream", default=None, help=argparse.SUPPRESS)  # part 2 (c), in a child process
    args = parser.parse_args(argv)
    for key, value in (SMOKE if args.smoke else FULL).items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    args.data_dir = str(repo_path(args.data_dir))
    args.work_dir = Path(args.work_dir or (tempfile.gettempdir() if args.smoke else REPO.parent))
    args.parts = {1, 2, 3, 4} if args.smoke else {4} if args.gpu else {int(p) for p in args.parts.split(",") if p}
    return args


def ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.split(",") if v)


# --- running epochs the way fit does, timing only the epochs ------------------------------------------
class Runner:
    """One run's plan, compiled programs and state, as `fit` builds them (plan_run, run_programs);
    `epoch()` trains the next epoch (resident: one compiled call on the placed set (N, D); stream:
    stream_epoch over the run's chunks read by `row_reader`, ahead across epoch ends) and returns
    (state, stats) unwaited."""

    def __init__(self, config, train):
        from jaxmlp.training import plan_run, run_programs
        from jaxmlp.training.feed import host_arrays, row_reader
        from jaxmlp.training.state import run_keys
        from jaxmlp.training.stream import stream_chunks

        self.plan = plan_run(config, train)
        self.programs = run_programs(self.plan)
        init_key, self.train_key = run_keys(config.seed)
        self.state = self.programs.init(self.plan.place(init_key))
        self.read = row_reader(train, self.plan.config.dtype)
        streamed = self.programs.stream is not None
        self.data = None if streamed else self.plan.place(host_arrays(train, self.plan.config.dtype))
        # stream: the run's chunks, read ahead across epoch ends as fit reads them
        self.chunks = stream_chunks(self.plan, self.read, self.train_key, 0) if streamed else None
        self.epochs = 0

    @property
    def samples(self) -> int:
        """Examples one epoch trains on: steps * batch."""
        return self.plan.spec.steps_per_epoch * self.plan.config.batch_size

    def epoch(self):
        from jaxmlp.training.state import epoch_key
        from jaxmlp.training.stream import stream_epoch

        epoch, self.epochs = self.epochs, self.epochs + 1
        if self.programs.stream is not None:
            self.state, stats = stream_epoch(self.plan, self.programs.stream, self.chunks, epoch, self.state)
        else:
            self.state, stats = self.programs.epoch(self.plan.place(epoch_key(self.train_key, epoch)), self.state,
                                                    *self.data)
        return self.state, stats


def config_of(hidden: tuple[int, ...], batch: int, feed: str):
    """Part 1-3's training config: relu MLP, Adam, no dropout, no checkpoints."""
    from jaxmlp import TrainConfig

    return TrainConfig(dataset="bench", hidden=hidden, batch_size=batch, epochs=1000, learning_rate=1e-3,
                       dropout=0.0, checkpoint_every=0, data_feed=feed)


def timed_ways(ways: dict, repeats: int) -> tuple[dict, float | None]:
    """Warm each way up once, then interleaved_medians; also the cores other processes used meanwhile."""
    for fn in ways.values():
        block(fn())
    before = cpu_snapshot()
    timings = interleaved_medians(ways, repeats)
    return timings, foreign_cores(before, cpu_snapshot())


def idle_wait(args) -> dict:
    """wait_for_idle_cpu at the run's patience (none in --smoke)."""
    return wait_for_idle_cpu(window_s=args.window_s, max_wait_s=args.idle_wait_s)


def matmul_rate(n: int, repeats: int = 5) -> float:
    """FLOP/s of a float32 jnp.matmul of two (n, n) arrays on the default device, median of repeats."""
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    mm = jax.jit(lambda p, q: p @ q)
    block(mm(a, a))
    return 2 * n ** 3 / median_time(lambda: mm(a, a), repeats)[0]


# --- data sets on disk ---------------------------------------------------------------------------------
def write_shards(directory: Path, chunks, num_classes: int, rows_per_shard: int) -> None:
    """ShardWriter npy shards of the train split from `chunks`: (x (m, D) float32, y (m,) int) pairs."""
    from jaxmlp.data.manifest import ShardWriter

    with ShardWriter(directory, format="npy", rows_per_shard=rows_per_shard, num_classes=num_classes) as writer:
        for x, y in chunks:
            writer.append("train", x, y)


def shard_files(directory: Path) -> list[Path]:
    return sorted(directory.glob("*.npy"))


def drop_cached(files) -> None:
    """fsync, then posix_fadvise(DONTNEED) on every file: its pages, written back, leave the page cache
    (no root needed; DONTNEED skips dirty pages, hence the fsync)."""
    for path in files:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def sequential_read(files, limit_bytes: float, block_bytes: int = 8 << 20) -> dict:
    """The disk's sequential read rate: `files` front to back in block_bytes reads, dropped from the
    page cache before and after, until limit_bytes are read."""
    drop_cached(files)
    buf, done = bytearray(block_bytes), 0
    io_before = proc_status("/proc/self/io", "read_bytes:")
    start = time.perf_counter()
    for path in files:
        with open(path, "rb", buffering=0) as f:
            while done < limit_bytes and (n := f.readinto(buf)):
                done += n
        if done >= limit_bytes:
            break
    seconds = time.perf_counter() - start
    io_after = proc_status("/proc/self/io", "read_bytes:")
    drop_cached(files)
    storage = None if io_before is None or io_after is None else io_after - io_before  # ~done: not from the cache
    return {"bytes": done, "seconds": seconds, "bytes_per_s": done / seconds, "storage_read_bytes": storage}


def chunk_steps_of(width: int, batch: int = 128) -> int:
    """k, the steps of a streamed chunk of rows of `width` float32 features and an int32 label
    (memory.chunk_steps, for an epoch longer than a chunk)."""
    from jaxmlp.training.memory import CHUNK_BYTES

    return max(1, CHUNK_BYTES // (batch * 4 * (width + 1)))


def reader_alone(directory: Path, files, chunk_rows: int, chunks: int) -> dict:
    """The reader by itself, no training beside it: `ShardSet.rows` (through StreamedDataset.rows)
    of `chunks` chunks of `chunk_rows` rows drawn from one random permutation of the cold set, as a
    streamed epoch reads them; rows/s."""
    from jaxmlp import load_dataset

    drop_cached(files)
    train = load_dataset(f"npy:{directory}").train
    chunk_rows = min(chunk_rows, len(train) // chunks)  # (a smoke run's set is smaller than the chunks)
    order = np.random.default_rng(0).permutation(len(train))[:chunks * chunk_rows].reshape(chunks, chunk_rows)
    start = time.perf_counter()
    for rows in order:
        train.rows(rows)
    elapsed = time.perf_counter() - start
    drop_cached(files)
    return {"chunk_rows": chunk_rows, "chunks": chunks, "seconds": elapsed, "rows_per_s": order.size / elapsed}


def random_read(files, seconds: float, threads: int) -> dict:
    """The disk's random 4 KiB read rate at a queue depth of `threads` (ShardSet.rows' readers): page
    reads (os.pread) at uniform random pages of `files` for `seconds`, dropped from the cache first."""
    import threading

    drop_cached(files)
    sizes = [os.path.getsize(p) // 4096 for p in files]
    fds, counts = [os.open(p, os.O_RDONLY) for p in files], [0] * threads
    stop = time.perf_counter() + seconds

    def reader(i: int) -> None:
        rng = np.random.default_rng(i)
        while time.perf_counter() < stop:
            f = int(rng.integers(len(fds)))
            os.pread(fds[f], 4096, int(rng.integers(sizes[f])) * 4096)
            counts[i] += 1

    start = time.perf_counter()
    workers = [threading.Thread(target=reader, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.perf_counter() - start
    for fd in fds:
        os.close(fd)
    drop_cached(files)
    return {"threads": threads, "reads": sum(counts), "seconds": elapsed, "reads_per_s": sum(counts) / elapsed,
            "bytes_per_s": 4096 * sum(counts) / elapsed}


@contextlib.contextmanager
def temporary_dir(parent: Path, prefix: str):
    """A fresh directory under `parent`, removed on leaving (also on an error or Ctrl-C)."""
    path = Path(tempfile.mkdtemp(dir=parent, prefix=prefix))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def mnist_sets(args):
    """(train Dataset in memory, the same rows as a StreamedDataset `npy:DIR` in the page cache);
    the shards are deleted on leaving."""
    from jaxmlp import load_dataset

    train = load_dataset("mnist", data_dir=args.data_dir, n_samples=args.n_samples).train
    with temporary_dir(args.work_dir, "jaxmlp_stream_mnist_") as directory:
        write_shards(directory, [(train.x, train.y)], 10, SHARD_BYTES // (4 * train.num_features))
        streamed = load_dataset(f"npy:{directory}").train
        streamed.load()  # every shard read once: in the page cache now
        yield train, streamed


# --- part 1: the page cache ----------------------------------------------------------------------------
def page_cache_part(args, train, streamed) -> dict:
    """Resident vs streamed epochs of MNIST at batch 128, interleaved: examples/s, ratio, floor."""
    import jax

    hidden = ints(args.hidden)
    waited = idle_wait(args)
    runs = {"resident": Runner(config_of(hidden, 128, "resident"), train),
            "streamed": Runner(config_of(hidden, 128, "stream"), streamed)}
    timings, foreign = timed_ways({name: run.epoch for name, run in runs.items()}, args.epochs_timed)
    same = all(np.array_equal(a, b) for a, b in zip(*(jax.tree.leaves(jax.device_get(r.state.params))
                                                       for r in runs.values())))
    samples = runs["resident"].samples
    for name, t in timings.items():
        t["examples_per_s"] = samples / t["median_s"]
    rate = matmul_rate(args.matmul_n)
    sizes = runs["resident"].plan.sizes
    floor = mlp_train_flops(sizes, samples) / rate
    ratio = timings["streamed"]["examples_per_s"] / timings["resident"]["examples_per_s"]
    log(f"page cache: resident {timings['resident']['examples_per_s']:.0f} ex/s, streamed "
        f"{timings['streamed']['examples_per_s']:.0f} ex/s ({ratio:.3f}x), floor {floor:.2f} s/epoch")
    return {"sizes": sizes, "batch": 128, "examples_per_epoch": samples, "chunk_steps": runs["streamed"].plan.chunk_steps,
            "timings": timings, "ratio": ratio, "bit_identical_params": same, "matmul_flops_per_s": rate,
            "matmul_n": args.matmul_n, "floor_s": floor, "other_cores": foreign, "idle_wait": waited}


# --- part 3: wide batches ------------------------------------------------------------------------------
def run_order(plan) -> tuple[int, int, int]:
    """(n, batch, accumulate): what a run's epoch permutation (feed.epoch_rows) is drawn for."""
    return plan.spec.n_train, plan.config.batch_size, plan.config.accumulate


def device_only(run: Runner):
    """The streamed epoch's compiled programs (start, chunk per chunk, end) on chunks gathered and
    placed beforehand: what the device does in a streamed epoch without waiting for the host."""
    from jaxmlp.training.state import epoch_key
    from jaxmlp.training.feed import epoch_rows
    from jaxmlp.training.stream import chunk_bounds, chunk_inputs

    plan, programs, state = run.plan, run.programs.stream, run.state
    order = epoch_rows(*run_order(plan), plan.place(epoch_key(run.train_key, 0)))
    inputs = [block(chunk_inputs(plan, run.read, order, a, b))
              for a, b in chunk_bounds(plan.spec.steps_per_epoch, plan.chunk_steps)]

    def epoch():
        carry = programs.start(state)  # neither start nor end donates `state`: the same one every time
        for chunk in inputs:
            carry = programs.chunk(carry, *chunk)
        return programs.end(state, carry)

    return epoch


def wide_part(args, streamed) -> dict:
    """Streamed epochs against their device-only time at each wide batch: the device's idle fraction."""
    hidden, rows = ints(args.hidden), []
    for batch in ints(args.wide_batches):
        waited = idle_wait(args)
        run = Runner(config_of(hidden, batch, "stream"), streamed)
        timings, foreign = timed_ways({"streamed": run.epoch, "device_only": device_only(run)}, args.epochs_timed)
        idle = 1 - timings["device_only"]["median_s"] / timings["streamed"]["median_s"]
        chunk_mb = run.plan.chunk_steps * batch * (run.plan.sizes[0] + 1) * 4 / 1e6
        log(f"batch {batch}: streamed {timings['streamed']['median_s']:.3f} s, device only "
            f"{timings['device_only']['median_s']:.3f} s: idle {idle:.1%}")
        rows.append({"batch": batch, "steps_per_epoch": run.plan.spec.steps_per_epoch,
                     "chunk_steps": run.plan.chunk_steps, "chunk_mb": chunk_mb, "timings": timings,
                     "idle_fraction": idle, "other_cores": foreign, "idle_wait": waited})
    return {"sizes": (streamed.num_features, *hidden, 10), "runs": rows}


# --- part 2: larger than memory ------------------------------------------------------------------------
def big_chunks(rows: int, width: int, chunk_rows: int, seed: int = 0):
    """`rows` synthetic examples in chunks: x (m, width) float32 uniform in [-1, 1), y (m,) int32 the
    argmax of x @ a fixed random (width, 10) teacher (learnable, and cheap to make)."""
    teacher = np.random.default_rng(seed).standard_normal((width, 10), dtype=np.float32)
    for i, start in enumerate(range(0, rows, chunk_rows)):
        rng = np.random.default_rng([seed, i + 1])
        x = rng.random((min(chunk_rows, rows - start), width), dtype=np.float32)
        x *= 2
        x -= 1
        yield x, (x @ teacher).argmax(1).astype(np.int32)


def memory_total() -> int | None:
    """Bytes of RAM (/proc/meminfo MemTotal), None off Linux."""
    try:
        with open("/proc/meminfo") as f:
            return next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    except (OSError, StopIteration):
        return None


def subset_rate(args, width: int, hidden: tuple[int, ...]) -> dict:
    """(b): the resident examples/s of the same config on an in-memory set of `subset_rows` rows (N, width)."""
    from jaxmlp.data.dataset import Dataset

    ((x, y),) = big_chunks(args.subset_rows, width, args.subset_rows, seed=1)
    waited = idle_wait(args)
    run = Runner(config_of(hidden, 128, "resident"), Dataset(x, y, name="subset", num_classes=10))
    timings, foreign = timed_ways({"resident": run.epoch}, args.epochs_timed)
    t = timings["resident"]
    return {"rows": args.subset_rows, "examples_per_epoch": run.samples, **t,
            "examples_per_s": run.samples / t["median_s"], "other_cores": foreign, "idle_wait": waited}


def child_stream(spec: dict) -> None:
    """(c), in a child process: one streamed epoch over `spec['dir']`; prints one JSON line with its
    wall s, examples, bytes read from storage (/proc/self/io) and peak RSS (VmHWM, ru_maxrss)."""
    from jaxmlp import load_dataset
    from jaxmlp.training.state import epoch_key
    from jaxmlp.training.feed import epoch_rows

    train = load_dataset(f"npy:{spec['dir']}").train
    run = Runner(config_of(tuple(spec["hidden"]), 128, "stream"), train)
    block(epoch_rows(*run_order(run.plan), run.plan.place(epoch_key(run.train_key, 1))))  # compile the permutation's program
    io_before = proc_status("/proc/self/io", "read_bytes:")
    seconds = time_call(run.epoch)
    io_after = proc_status("/proc/self/io", "read_bytes:")
    hwm = proc_status("/proc/self/status", "VmHWM:")
    print(json.dumps({"rows": len(train), "examples": run.samples, "seconds": seconds,
                      "read_bytes": None if io_before is None or io_after is None else io_after - io_before,
                      "vm_hwm_bytes": None if hwm is None else hwm * 1024,
                      "ru_maxrss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024}))


def proc_status(path: str, field: str) -> int | None:
    """The first number after `field` in a /proc file (None when unreadable)."""
    try:
        with open(path) as f:
            return next(int(line.split()[1]) for line in f if line.startswith(field))
    except (OSError, StopIteration, ValueError):
        return None


def streamed_child(args, directory: Path, hidden: tuple[int, ...]) -> dict:
    """(c): the child's streamed epoch, the shards dropped from the page cache first."""
    drop_cached(shard_files(directory))
    waited = idle_wait(args)
    spec = json.dumps({"dir": str(directory), "hidden": list(hidden)})
    before = cpu_snapshot(children=True)
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child-stream", spec], cwd=REPO,
                          capture_output=True, text=True)
    after = cpu_snapshot(children=True)
    if proc.returncode != 0:
        raise SystemExit(f"bench_stream.py: the streamed epoch's process failed ({proc.returncode}): "
                         f"{proc.stderr.strip()[-800:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result.update(examples_per_s=result["examples"] / result["seconds"], other_cores=foreign_cores(before, after),
                  idle_wait=waited)
    return result


def checked_disk(args, size: int) -> dict:
    """Free disk at the work dir; SystemExit unless it holds `size` + SPARE_DISK bytes."""
    free = shutil.disk_usage(args.work_dir).free
    if free < size + SPARE_DISK:
        raise SystemExit(f"bench_stream.py: part 2 needs {(size + SPARE_DISK) / GB:.1f} GB free at {args.work_dir} "
                         f"(the set + 5 GB), it has {free / GB:.1f} GB; pass a smaller --big-gb or --work-dir")
    return {"free_bytes": free, "work_dir": str(args.work_dir)}


def big_part(args, width: int) -> dict:
    """(a) disk rate, (b) resident compute rate, (c) one streamed epoch over a set larger than RAM,
    its rows `width` float32 features."""
    hidden = ints(args.big_hidden)
    rows = int(args.big_gb * GB) // (4 * width)
    disk = checked_disk(args, rows * 4 * width)
    shard_rows = SHARD_BYTES // (4 * width) if not args.smoke else 2048
    with temporary_dir(args.work_dir, "jaxmlp_stream_big_") as directory:
        log(f"big set: writing {rows:,} rows x {width} float32 ({rows * 4 * width / GB:.1f} GB) to {directory}")
        t0 = time.perf_counter()
        write_shards(directory, big_chunks(rows, width, shard_rows), 10, shard_rows)
        write_s = time.perf_counter() - t0
        sequential = sequential_read(shard_files(directory), args.seq_read_gb * GB)
        random = random_read(shard_files(directory), args.random_read_s, READERS)
        log(f"disk: sequential read {sequential['bytes_per_s'] / 1e6:.0f} MB/s; random 4 KiB reads "
            f"{random['reads_per_s']:,.0f}/s ({random['bytes_per_s'] / 1e6:.0f} MB/s) at queue depth {READERS}")
        chunk_rows = chunk_steps_of(width) * 128
        alone = reader_alone(directory, shard_files(directory), chunk_rows, args.reader_chunks)
        log(f"reader alone: {alone['rows_per_s']:,.0f} rows/s in chunks of {chunk_rows} random rows")
        resident = subset_rate(args, width, hidden)
        log(f"resident compute rate {resident['examples_per_s']:.0f} ex/s: the streamed epoch would take "
            f"{rows / resident['examples_per_s'] / 60:.1f} min at that rate")
        streamed = streamed_child(args, directory, hidden)
    streamed["delivered_bytes_per_s"] = streamed["examples_per_s"] * 4 * width
    needed = resident["examples_per_s"] * 4 * width  # bytes/s the resident rate would read
    log(f"streamed: {streamed['seconds']:.1f} s, {streamed['examples_per_s']:.0f} ex/s, "
        f"{streamed['delivered_bytes_per_s'] / 1e6:.0f} MB/s delivered, peak RSS {streamed['vm_hwm_bytes'] / GB:.2f} GB")
    return {"rows": rows, "width": width, "sizes": (width, *hidden, 10), "set_bytes": rows * 4 * width,
            "ram_bytes": memory_total(), "disk": disk, "write_s": write_s, "shard_rows": shard_rows,
            "sequential_read": sequential, "random_read": random, "reader_alone": alone, "resident_subset": resident,
            "streamed": streamed,
            "needed_bytes_per_s": needed, "disk_bound": needed > sequential["bytes_per_s"]}


# --- part 4: GPU ---------------------------------------------------------------------------------------
def copy_rate(mib: int, repeats: int = 5) -> dict:
    """Host-to-device bytes/s: jax.device_put of a (mib MiB) float32 host array, median of repeats."""
    import jax

    host = np.ones(mib << 18, np.float32)
    block(jax.device_put(host))
    seconds, raw = median_time(lambda: jax.device_put(host), repeats)
    return {"bytes": host.nbytes, "median_s": seconds, "raw_s": raw, "bytes_per_s": host.nbytes / seconds}


# --- the table -----------------------------------------------------------------------------------------
def verdict(value: float, goal: float, at_least: bool, fmt: str = "{:.3f}") -> str:
    """'met (by +x)' / 'missed (by -x)': value against goal (>= when at_least, else <=)."""
    margin = value - goal if at_least else goal - value
    return f"{'met' if margin >= 0 else 'missed'} (by {fmt.format(abs(margin))})"


def page_cache_rows(part: dict, label: str) -> list[list]:
    t, ratio = part["timings"], part["ratio"]
    floor_rate = part["examples_per_epoch"] / part["floor_s"]
    return [[label, f"streamed >= {GOALS['page_cache']}x resident examples/s", f"{ratio:.3f}x "
             f"({t['streamed']['examples_per_s']:,.0f} vs {t['resident']['examples_per_s']:,.0f} ex/s; matmul floor "
             f"{floor_rate:,.0f} ex/s; params bit-identical: {'yes' if part['bit_identical_params'] else 'NO'})",
             verdict(ratio, GOALS["page_cache"], True)]]


def wide_rows(part: dict, label: str) -> list[list]:
    return [[f"{label}, batch {r['batch']}", f"device idle <= {GOALS['idle']:.0%} of the streamed epoch",
             f"{r['idle_fraction']:.1%} ({r['timings']['streamed']['median_s']:.3f} s streamed vs "
             f"{r['timings']['device_only']['median_s']:.3f} s device only; {r['steps_per_epoch']} steps, chunks of "
             f"{r['chunk_steps']} steps = {r['chunk_mb']:.0f} MB)",
             verdict(r["idle_fraction"], GOALS["idle"], False, "{:.1%}")] for r in part["runs"]]


def big_rows(part: dict) -> list[list]:
    s, r, seq = part["streamed"], part["resident_subset"], part["sequential_read"]["bytes_per_s"]
    rss = s["vm_hwm_bytes"] / GB
    label = f"2 larger than memory, D = {part['width']}"
    rows = [[label, f"peak RSS <= {GOALS['rss_gb']:.0f} GB",
             f"{rss:.2f} GB (set {part['set_bytes'] / GB:.1f} GB, RAM {(part['ram_bytes'] or 0) / GB:.1f} GB)",
             verdict(rss, GOALS["rss_gb"], False, "{:.2f} GB")]]
    io = f"; {s['read_bytes'] / s['seconds'] / 1e6:,.0f} MB/s read from storage" if s["read_bytes"] is not None else ""
    if part["disk_bound"]:
        ratio = s["delivered_bytes_per_s"] / seq
        rows.append([f"{label} (disk-bound)", f">= {GOALS['disk']}x the disk's sequential read rate",
                     f"{ratio:.3f}x ({s['delivered_bytes_per_s'] / 1e6:,.0f} vs {seq / 1e6:,.0f} MB/s{io}; "
                     f"{s['seconds']:.0f} s epoch)", verdict(ratio, GOALS["disk"], True)])
    else:
        ratio = s["examples_per_s"] / r["examples_per_s"]
        rows.append([f"{label} (compute-bound)", f">= {GOALS['compute']}x the resident compute rate",
                     f"{ratio:.3f}x ({s['examples_per_s']:,.0f} vs {r['examples_per_s']:,.0f} ex/s{io}; "
                     f"{s['seconds']:.0f} s epoch)", verdict(ratio, GOALS["compute"], True)])
    return rows


def table_rows(record: dict) -> list[list]:
    rows = []
    if "page_cache" in record:
        rows += page_cache_rows(record["page_cache"], "1 page cache")
    for big in record.get("big", []):
        rows += big_rows(big)
    if "wide" in record:
        rows += wide_rows(record["wide"], "3 wide batches")
    if "gpu" in record:
        gpu = record["gpu"]
        rows += page_cache_rows(gpu["page_cache"], "4 GPU page cache") + wide_rows(gpu["wide"], "4 GPU wide")
        rows.append(["4 GPU host-to-device copy", "(measured, no goal)",
                     f"{gpu['copy']['bytes_per_s'] / GB:.2f} GB/s ({gpu['copy']['bytes'] >> 20} MiB device_put)", ""])
    return rows


def serial_rate(big: dict) -> float:
    """Examples/s of reading (the reader alone) and computing (the resident subset) one after the other."""
    return 1 / (1 / big["reader_alone"]["rows_per_s"] + 1 / big["resident_subset"]["examples_per_s"])


def notes(record: dict) -> str:
    text = ("Epoch times only (compiles, writing and reading shards outside them), block_until_ready, a warm-up "
            "epoch first, medians of the timed epochs, the ways interleaved in one process. The 'other cores' "
            "other processes kept busy during each timing are in the JSON (this VM is shared).")
    for big in record.get("big", []):
        text += (f" Part 2, D = {big['width']}: {big['rows']:,} rows of {big['width']} float32 features "
                 f"({4 * big['width']:,} bytes a row), model {big['sizes']}, batch 128; the goal that applies is the "
                 f"{'disk' if big['disk_bound'] else 'compute'} one: the resident rate needs "
                 f"{big['needed_bytes_per_s'] / 1e6:,.0f} MB/s, the disk reads "
                 f"{big['sequential_read']['bytes_per_s'] / 1e6:,.0f} MB/s sequentially and "
                 f"{big['random_read']['bytes_per_s'] / 1e6:,.0f} MB/s in random 4 KiB reads at queue depth "
                 f"{big['random_read']['threads']} (the rows of a shuffled epoch are random reads: that rate, not "
                 "the sequential one, bounds the streamed epoch of narrow rows). The reader alone (ShardSet.rows, "
                 f"no training beside it) gathered {big['reader_alone']['rows_per_s']:,.0f} random rows a second; "
                 "reading and computing one after the other would give 1 / (1 / that + 1 / the resident rate) = "
                 f"{serial_rate(big):,.0f} examples/s. Writing the set took "
                 f"{big['write_s']:.0f} s (two statistics passes included).")
    return text


# --- main ----------------------------------------------------------------------------------------------
def run_parts(args) -> dict:
    """The selected parts' records, the MNIST shards shared by parts 1, 3 and 4."""
    out = {}
    if args.parts & {1, 3, 4}:
        with mnist_sets(args) as (train, streamed):
            if 1 in args.parts:
                out["page_cache"] = page_cache_part(args, train, streamed)
            if 3 in args.parts:
                out["wide"] = wide_part(args, streamed)
            if 4 in args.parts:
                out["gpu"] = {"copy": copy_rate(args.copy_mib), "page_cache": page_cache_part(args, train, streamed),
                              "wide": wide_part(args, streamed)}
    if 2 in args.parts:
        out["big"] = [big_part(args, width) for width in ints(args.big_widths)]
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.child_stream:
        return child_stream(json.loads(args.child_stream))
    import jax

    if args.gpu and not args.smoke and jax.default_backend() != "gpu":
        raise SystemExit(f"bench_stream.py: no GPU (jax backend {jax.default_backend()!r}); run the CPU parts, or "
                         "--smoke to check part 4's code here")
    settings = {k: getattr(args, k) for k in (*FULL, "data_dir")}
    record = {"title": "Streaming training data from disk against the resident epoch",
              "environment": environment(), "load_before": load_averages(),
              "settings": {**settings, "parts": sorted(args.parts), "work_dir": str(args.work_dir)}, "goals": GOALS}
    record.update(run_parts(args))
    record["load_after"] = load_averages()
    header, rows = ["part", "goal", "measured", "verdict"], table_rows(record)
    print("\n".join(markdown_table(header, rows)))
    name = args.name + ("_gpu" if args.gpu and not args.smoke else "")
    paths = write_results(name, record, header, rows, notes(record))
    log(f"wrote {', '.join(str(p) for p in paths)}")


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
