"""Loading ucxx, and the UCX options a ``ucx://`` context is made with.

The import of ucxx (:func:`ucxx_api`) runs with our load-time options
(:func:`load_time_config`) and leaves the process environment as it found it:
ucxx's package sets ``UCX_*`` variables of its own when imported
(``UCX_RNDV_THRESH=8192`` and three for GPU memory, ucxx 0.52), which UCX
would then read as the user's for every context of this process and every
child process after it. They are taken out of the environment and passed to
the context instead (:func:`ucx_config`), below our options and below any
``UCX_*`` variable the user sets; so a user's choice always wins, and ours
stand for one context only.

Loop rules: none (plain functions); importing this module does not import ucxx.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any

from ...errors import BackendUnavailable, ConfigError

__all__ = [
    "DEFAULT_UCX_CONFIG",
    "DEFAULT_UCX_LOAD_CONFIG",
    "load_time_config",
    "new_context",
    "ucx_config",
    "ucxx_api",
]

#: UCX options we choose when the user has not set them in the environment
#: (``UCX_<NAME>``). ``self,sm,tcp`` work everywhere (no GPU, no RDMA device
#: needed); ``cuda_copy,cuda_ipc`` are added when an NVIDIA driver is present
#: (/dev/nvidiactl), to move device memory. ``MM_ERROR_HANDLING``: without it
#: UCX leaves shared memory out of every endpoint made through a listener
#: (ucxx's endpoints ask for peer-failure handling, which UCX's shared-memory
#: transports do not offer by default), so two processes on one host talked
#: over tcp/lo (``UCX_PROTO_INFO=y`` shows the lanes); the links' goodbye and
#: loss grace (:mod:`._link`) keep every message a peer sent before it closed.
#: ``RNDV_THRESH``: with ucxx's 8 KiB every message above it between two
#: processes of one host went by rendezvous, which there means the receiver
#: asking the sender for the data (shared-memory endpoints with error handling
#: have no CMA): a wake-up of the sender per message. Within a host, messages
#: below 64 KiB go eager (a 16 KiB echo between sleeping loops 420-440 ->
#: 225-242 µs a round trip; a 32 KiB one, which a threshold of 32 KiB still sent by
#: rendezvous, 477 -> 276 µs and three wake-ups of each side per round trip -> one,
#: 2026-12-07), and a link inlines buffers in its prefix up to just below it
#: (:data:`._wire.INLINE_LIMIT`). Not more: an eager message is copied into the
#: receiver's queue whether or not it is read, so larger ones would lift the bound on
#: what a link accepts while its peer does not read (the conformance suite's
#: backpressure check, 2,048 x 64 KiB); UCX's own choice (``auto``) is eager up to
#: ~570 KiB. Between hosts ucxx's 8 KiB stays.
DEFAULT_UCX_CONFIG = {
    "TLS": "self,sm,tcp",
    "MM_ERROR_HANDLING": "y",
    "RNDV_THRESH": "intra:64K,inter:8192",
    "WARN_UNUSED_ENV_VARS": "n",
}
_GPU_TLS = ",cuda_copy,cuda_ipc"

#: UCX options that its libraries read once, when they load (the import of
#: ucxx), set for that import only when the user has set neither them nor
#: ``UCX_TLS`` (the transports we choose). ``MEM_BISTRO_GRACE_DURATION``: UCX's
#: memory hooks (default mode "bistro") patch eight memory functions of libc and
#: wait 50 ms after each for threads that may be running the patched code
#: (UCX 1.21): 0.4 s per process (ucx:// listen, connect and a first message
#: 0.67-0.68 -> 0.22-0.28 s with 5 ms). Threads are rare at that point, and
#: one inside the first bytes of such a function for 5 ms rarer still. Not the
#: relocation-table mode ("reloc", as fast; our choice from 2026-12-06): it also
#: puts UCX's own ``malloc`` and ``free`` in the tables of every library loaded
#: later, and one that frees what glibc allocated aborts the process (cramjam,
#: which uproot imports, after a first ucx:// link: "munmap_chunk(): invalid
#: pointer"); without those (``MEM_MALLOC_RELOC=n``) UCX has no memory events,
#: keeps no registration cache, and crashes aborting a rendezvous send (a
#: message refused for its size), 2026-12-07.
DEFAULT_UCX_LOAD_CONFIG = {"MEM_BISTRO_GRACE_DURATION": "5ms"}

_ucxx: Any = None
#: the options ucxx's import put in the environment (names without ``UCX_``),
#: taken out of it again: passed to each context unless the user sets them
_ucxx_options: dict[str, str] = {}


def ucxx_api() -> Any:
    """Import and return ``ucxx._lib.libucxx`` (the environment as before, see
    the module docstring).

    Raises BackendUnavailable("ucxx", "ucx") when ucxx (or its UCX libraries)
    cannot be imported; ConfigError when MPI was loaded first in this process
    with a UCX of its own (MPICH's ch4:ucx), which keeps ucxx's from loading.
    """
    global _ucxx
    if _ucxx is None:
        before = set(os.environ)
        try:
            with load_time_config():
                import ucxx._lib.libucxx as api
        except ImportError as exc:
            raise BackendUnavailable("ucxx", "ucx", str(exc)) from exc
        except OSError as exc:  # a UCX library of the same name was loaded before
            raise _load_error(exc) from exc
        finally:
            _take_back_ucxx_options(before)
        _ucxx = api
    return _ucxx


def _load_error(exc: OSError) -> Exception:
    """What to raise when ucxx's UCX libraries do not load (``exc``)."""
    if "mpi4py.MPI" in sys.modules:
        return ConfigError(
            "ucx:// cannot load its UCX libraries after MPI in this process: the MPI "
            f"library brought a UCX of its own ({exc}); load ucx:// first "
            "(actors.preload('ucx') before the first mpi:// link; the launcher does so "
            "for a process with links of both), or use one of them per process"
        )
    return BackendUnavailable("ucxx", "ucx", f"its UCX libraries do not load: {exc}")


def _take_back_ucxx_options(before: set[str]) -> None:
    """Move the ``UCX_*`` variables that appeared since ``before`` (ucxx's
    import) from the environment to :data:`_ucxx_options`."""
    for key in set(os.environ) - before:
        if key.startswith("UCX_"):
            _ucxx_options[key.removeprefix("UCX_")] = os.environ.pop(key)


@contextlib.contextmanager
def load_time_config() -> Iterator[None]:
    """Set :data:`DEFAULT_UCX_LOAD_CONFIG` in the environment for the block, unless
    the user chose the transports or the option; removed afterwards (child
    processes and other UCX libraries never see it)."""
    chosen = {} if "UCX_TLS" in os.environ else _not_set(DEFAULT_UCX_LOAD_CONFIG)
    added = {f"UCX_{k}": v for k, v in chosen.items()}
    os.environ.update(added)
    try:
        yield
    finally:
        for key, value in added.items():
            if os.environ.get(key) == value:
                del os.environ[key]


def _not_set(defaults: dict[str, str]) -> dict[str, str]:
    """The options of ``defaults`` whose ``UCX_<NAME>`` the user has not set."""
    return {k: v for k, v in defaults.items() if f"UCX_{k}" not in os.environ}


def ucx_config() -> dict[str, str]:
    """The UCX options passed to a context: ucxx's (see the module docstring),
    then ours over them, minus every option the user set in the environment."""
    config = _not_set({**_ucxx_options, **DEFAULT_UCX_CONFIG})
    if "TLS" in config and os.path.exists("/dev/nvidiactl"):
        config["TLS"] += _GPU_TLS
    return config


def new_context() -> Any:
    """A UCX context (tags, streams, wake-ups) with :func:`ucx_config`'s options.

    Raises BackendUnavailable("ucxx", "ucx") when ucxx cannot be imported or
    UCX cannot initialise (no usable transport).
    """
    api = ucxx_api()
    try:
        return api.UCXContext(
            config_dict=ucx_config(),
            feature_flags=(api.Feature.TAG, api.Feature.STREAM, api.Feature.WAKEUP),
        )
    except Exception as exc:  # UCX could not initialise (no usable transport)
        raise BackendUnavailable("ucxx", "ucx", f"UCX context failed: {exc!r}") from exc
