"""The MNIST contenders that bench_cpu.py and bench_gpu.py time against each other.

Workload: 784-512-512-10 relu, softmax cross-entropy, Adam lr 1e-3, fp32. One interface:

    c = Contender(batch, ...)  cheap; c.name
    c.setup(train, test)       once: data in place, programs compiled (c.compile_s: the
                               ahead-of-time compile in seconds, None where there is none);
                               c.samples_per_epoch
    c.start(seed)              fresh params and optimizer state (untimed)
    c.epoch(e)                 0-based epoch e; returns when it is done (the caller times it)
    c.accuracy()               test accuracy of the current params (untimed)
    c.close()                  drop the big references

- JaxmlpContender: the trainer itself. `plan_run` plans the run as `fit` does and
  `run_programs` gives the very compiled epoch `fit` runs (the same program, from the same
  cache); the plan's Evaluator gives the test accuracy.
- TorchContender: PyTorch eager (or a torch.compile mode), the loop a PyTorch user writes.
- SklearnContender: MLPClassifier with warm_start and max_iter=1: one fit() call is one epoch.

PyTorch and scikit-learn are the `.[bench]` extra; `peers_of(names)` says which of them a list
of contenders needs (for `_bench.require`).
"""
from __future__ import annotations

import os
import warnings

import jax
import numpy as np

from jaxmlp.config import TrainConfig
from jaxmlp.training import Evaluator, plan_run, run_programs
from jaxmlp.training.evaluate import host_arrays
from jaxmlp.training.state import epoch_key, run_keys

HIDDEN = (512, 512)
LR = 1e-3
PEERS = {"torch": "torch", "sklearn": "scikit-learn"}  # import name -> package name


def peers_of(names) -> dict[str, tuple[str, str]]:
    """What the contenders `names` need of the optional peers: {import name: (package, which
    contenders need it)}, as `_bench.require` takes it."""
    needs: dict[str, list[str]] = {}
    for n in sorted(set(names)):
        if n.startswith("torch") or n == "sklearn":
            needs.setdefault("torch" if n.startswith("torch") else "sklearn", []).append(n)
    return {m: (PEERS[m], ("the contenders " if len(ns) > 1 else "the contender ") + ", ".join(ns))
            for m, ns in needs.items()}


def mnist_config(batch: int, grad_method: str = "autodiff", **overrides) -> TrainConfig:
    """The benchmark workload as a TrainConfig (one epoch per call of the contender)."""
    return TrainConfig(**{"dataset": "mnist", "hidden": HIDDEN, "activation": "relu", "optimizer": "adam",
                          "learning_rate": LR, "batch_size": batch, "epochs": 1, "grad_method": grad_method,
                          "dropout": 0.0, **overrides})


class JaxmlpContender:
    """The trainer's compiled epoch (what `fit` runs), stepped one epoch at a time."""

    def __init__(self, batch: int, grad_method: str = "autodiff", name: str | None = None):
        self.name = name or f"jaxmlp-{grad_method}"
        self.config = mnist_config(batch, grad_method)
        self.compile_s = None

    def setup(self, train, test) -> None:
        self.plan = plan_run(self.config, train, None, test)  # fit's plan, its checks included
        self.programs = run_programs(self.plan)  # fit's own programs (cached)
        self.compile_s = self.programs.compile_seconds
        self.x, self.y = self.plan.place(host_arrays(train, np.dtype(self.config.dtype)))
        self.evaluator = Evaluator(self.plan)
        self.test_set = self.evaluator.eval_set(test)
        self.samples_per_epoch = self.plan.spec.steps_per_epoch * self.config.batch_size  # remainder dropped

    def start(self, seed: int) -> None:
        init_key, self.train_key = run_keys(seed)
        self.state = jax.block_until_ready(self.programs.init(self.plan.place(init_key)))

    def epoch(self, e: int) -> None:
        plan, programs = self.plan, self.programs
        self.state, stats = programs.epoch(plan.place(epoch_key(self.train_key, e)), self.state, self.x, self.y)
        if not jax.device_get(stats).finite:  # waits for the epoch
            raise RuntimeError(f"{self.name} diverged in epoch {e + 1}")

    def accuracy(self) -> float:
        return self.evaluator.metrics(self.state.params, *self.test_set)["accuracy"]

    def close(self) -> None:
        del self.plan, self.programs, self.state, self.x, self.y, self.test_set, self.evaluator


class TorchContender:
    """PyTorch: the standard per-step loop (randperm + index, zero_grad, forward, cross_entropy,
    backward, Adam.step), data as tensors on `device`, He-normal init, zero biases.

    fused: Adam(fused=True); compile_mode: run the model through torch.compile(mode=...);
    drop_remainder: skip the last partial batch (like jaxmlp) instead of keeping it (the
    DataLoader default). On the CPU: torch.set_num_threads(os.cpu_count()), set_flush_denormal(True).
    """

    def __init__(self, batch: int, *, fused: bool = False, compile_mode: str | None = None, device: str = "cpu",
                 drop_remainder: bool = False, name: str | None = None):
        default = "torch-fused" if fused else "torch"
        self.name = name or (default if compile_mode is None else f"torch.compile({compile_mode})")
        self.batch, self.fused, self.compile_mode, self.device = batch, fused, compile_mode, device
        self.drop_remainder = drop_remainder
        self.compile_s = None  # torch.compile compiles lazily, inside the first epoch

    def setup(self, train, test) -> None:
        import torch
        from torch import nn

        if self.device == "cpu":
            torch.set_flush_denormal(True)
            torch.set_num_threads(os.cpu_count())
        self.torch = torch
        sizes = (train.x.shape[1], *HIDDEN, train.num_classes)
        layers = [m for a, b in zip(sizes[:-1], sizes[1:]) for m in (nn.Linear(a, b), nn.ReLU())][:-1]
        self.base = nn.Sequential(*layers).to(self.device)
        self.model = self.base if self.compile_mode is None else torch.compile(self.base, mode=self.compile_mode)
        self.x, self.y, self.xt, self.yt = (torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(self.device)
                                            for a, dtype in ((train.x, np.float32), (train.y, np.int64),
                                                             (test.x, np.float32), (test.y, np.int64)))
        n = len(self.x)
        self.samples_per_epoch = n // self.batch * self.batch if self.drop_remainder else n

    def start(self, seed: int) -> None:
        torch, nn = self.torch, self.torch.nn
        torch.manual_seed(seed)
        with torch.no_grad():  # re-initialize in place: a compiled model keeps its graphs
            for m in self.base:
                if isinstance(m, nn.Linear):
                    nn.init.kaiming_normal_(m.weight, nonlinearity="relu")  # He normal (fan_in), jaxmlp's relu default
                    nn.init.zeros_(m.bias)
        self.opt = torch.optim.Adam(self.base.parameters(), lr=LR, **({"fused": True} if self.fused else {}))
        self.gen = torch.Generator(device=self.device).manual_seed(seed)

    def epoch(self, e: int) -> None:
        torch, model, opt = self.torch, self.model, self.opt
        model.train()
        perm = torch.randperm(len(self.x), generator=self.gen, device=self.device)
        graphs = self.compile_mode == "reduce-overhead"  # CUDA graphs: mark where each step starts
        for i in range(0, self.samples_per_epoch, self.batch):
            idx = perm[i:i + self.batch]
            if graphs:
                torch.compiler.cudagraph_mark_step_begin()
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(self.x[idx]), self.y[idx])
            loss.backward()
            opt.step()
        if not torch.isfinite(loss):  # reading the last loss waits for the epoch (on a GPU too)
            raise RuntimeError(f"{self.name} diverged in epoch {e + 1}")

    def accuracy(self) -> float:
        torch = self.torch
        self.base.eval()  # eager eval of the same params (a compiled eval would recompile for the test shape)
        with torch.no_grad():
            acc = float((self.base(self.xt).argmax(1) == self.yt).float().mean())
        self.base.train()
        return acc

    def close(self) -> None:
        del self.base, self.model, self.opt, self.x, self.y, self.xt, self.yt


class SklearnContender:
    """MLPClassifier(solver="adam", alpha=0: no L2, like the others) with warm_start and
    max_iter=1: each fit() call is one shuffled epoch; float32 inputs."""

    def __init__(self, batch: int):
        self.name, self.batch, self.compile_s = "sklearn", batch, None

    def setup(self, train, test) -> None:
        self.x, self.y = np.ascontiguousarray(train.x, dtype=np.float32), train.y
        self.xt, self.yt = np.ascontiguousarray(test.x, dtype=np.float32), test.y
        self.samples_per_epoch = len(self.x)

    def start(self, seed: int) -> None:
        from sklearn.neural_network import MLPClassifier

        self.clf = MLPClassifier(hidden_layer_sizes=HIDDEN, activation="relu", solver="adam", alpha=0.0,
                                 batch_size=self.batch, learning_rate_init=LR, max_iter=1, warm_start=True,
                                 shuffle=True, random_state=seed)

    def epoch(self, e: int) -> None:
        from sklearn.exceptions import ConvergenceWarning

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            self.clf.fit(self.x, self.y)

    def accuracy(self) -> float:
        return float(np.mean(self.clf.predict(self.xt) == self.yt))

    def close(self) -> None:
        del self.clf, self.x, self.xt
