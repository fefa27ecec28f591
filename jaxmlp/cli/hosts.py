"""The multi-host flags that `train` and `sweep` share, and joining the run: every process runs
the same command with its own --process-id (or the JAX_* environment variables), and
`jax.distributed` starts before anything touches a backend. Importing it imports no JAX.

    add_host_arguments(parser)                 # --coordinator, --num-processes, --process-id, --distributed-timeout
    hosts = host_settings(ns, "train")         # (coordinator, N, I), or None in one process; UsageError
    code = join(ns, hosts, "train")            # None once every process joined, else 1 (one line printed)
    quiet_runtime_log(argv, os.environ)        # first thing, before JAX loads: see its docstring
"""
from __future__ import annotations

import argparse
from typing import MutableMapping, Sequence

from jaxmlp.cli.flags import value_parser
from jaxmlp.cli.usage import PROG, UsageError, fail
from jaxmlp.config import DISTRIBUTED_TIMEOUT


RUNTIME_LOG_LEVEL = "TF_CPP_MIN_LOG_LEVEL"  # XLA's C++ log threshold, read once when JAX loads


def quiet_runtime_log(argv: Sequence[str], environ: MutableMapping[str, str]) -> None:
    """In a multi-process run (--num-processes or JAX_NUM_PROCESSES) show only XLA's fatal log
    lines, unless the user set the threshold: when a peer dies, XLA's coordination service would
    print its own error lines before jaxmlp's one line naming what happened and what is kept.
    It must run before JAX is imported (the level is read once, then)."""
    multi = any(a == "--num-processes" or a.startswith("--num-processes=") for a in argv) or \
        environ.get("JAX_NUM_PROCESSES", "1") not in ("", "1")
    if multi:
        environ.setdefault(RUNTIME_LOG_LEVEL, "3")


def add_host_arguments(parser: argparse.ArgumentParser) -> None:
    """The flag group of a multi-host run."""
    hosts = parser.add_argument_group("multi-host (jax.distributed; every process runs the same command with its "
                                     "own --process-id, --devices all and an --out-dir all of them see; "
                                     "or set JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID)")
    hosts.add_argument("--coordinator", metavar="HOST:PORT", help="address of process 0, which listens on PORT")
    hosts.add_argument("--num-processes", type=value_parser(int), metavar="N", help="number of processes")
    hosts.add_argument("--process-id", type=value_parser(int), metavar="I", help="this process, 0 .. N-1")
    hosts.add_argument("--distributed-timeout", type=value_parser(float), default=DISTRIBUTED_TIMEOUT,
                       metavar="SECONDS", help="fail when a peer has not joined (or stops answering) within "
                       f"SECONDS [{DISTRIBUTED_TIMEOUT:g}]")


def host_settings(ns: argparse.Namespace, command: str) -> tuple[str, int, int] | None:
    """(coordinator, num_processes, process_id) from the flags or the environment, None for one
    process; a usage error of `jaxmlp COMMAND` when they are incomplete or inconsistent."""
    from jaxmlp import distributed

    try:
        return distributed.distributed_settings(ns.coordinator, ns.num_processes, ns.process_id)
    except ValueError as exc:
        raise UsageError(f"{PROG} {command}: error: {exc}") from None


def join(ns: argparse.Namespace, hosts: tuple[str, int, int] | None, command: str) -> int | None:
    """Start jax.distributed (nothing in one process); returns once every process has joined,
    or exit status 1 with one line when a peer did not join within --distributed-timeout."""
    from jaxmlp import distributed

    if hosts is None:
        return None
    try:
        distributed.initialize(*hosts, timeout=ns.distributed_timeout)
    except distributed.DistributedError as exc:
        return fail(f"{PROG} {command}: error: {exc}", 1)
    return None
