"""Probed receives of a ``ucx://`` link: receives that learn how many bytes arrived.

ucxx's tag receive does not report the received length (it drops UCX's
``ucp_tag_recv_info_t``), so a link receives its prefix frames and its
out-of-line frames through a tag probe instead: the probe gives the length,
and a receive with the probe's handle moves the message. The two request-like
classes here (``completed``, ``check_error``: what
:class:`~actors.transports.ucx._progress.Engine` waits on) take messages from
a :class:`TagQueue`, which :class:`~actors.transports.ucx._link.UCXLink` is.

Loop rules: every method runs on the loop of the link's engine (the probes
and receives are calls on its UCX worker).
"""

from __future__ import annotations

from typing import Any, Protocol

from ...errors import PeerLost, ProtocolError

__all__ = ["ProbedFrames", "ProbedRecv", "TagQueue"]


class TagQueue(Protocol):
    """The messages of one link's receive tag, as the probed receives see them."""

    peer: str

    def take(self, arr: Any) -> tuple[Any, int] | None:
        """Take the next message of the tag into ``arr``: its receive request
        and length, or None when no message is there."""

    def ended(self) -> bool:
        """True when no further message can come (link closed or lost)."""

    def lost_error(self) -> PeerLost:
        """The PeerLost error a wait on a closed or lost link raises."""


class ProbedRecv:
    """The receive of one prefix frame of ``link`` that learns how many bytes
    arrived; request-like for :class:`Engine` (``completed``, ``check_error``).

    A posted ``tag_recv`` does not report the received length (ucxx drops
    UCX's ``ucp_tag_recv_info_t``), so nothing is posted ahead: until a message
    is there, every ``completed`` check probes the worker for the link's tag
    and removes the message it finds from UCX's unexpected queue
    (:meth:`TagQueue.take`); the probe gives its :attr:`length`, and a receive
    with the probe's handle puts it into ``arr``. A message longer than ``arr``
    completes as truncated: :meth:`check_error` raises. With no message there,
    a closed or lost link completes the wait (PeerLost): no posted receive
    exists for UCX to cancel, so nothing else would; a message that arrived
    before the loss is still taken first.
    """

    __slots__ = ("_arr", "_gone", "_link", "_req", "length")

    def __init__(self, link: TagQueue, arr: Any) -> None:
        self._link = link
        self._arr = arr
        self._req: Any = None
        self._gone = False
        self.length = 0

    @property
    def matched(self) -> bool:
        """True once a message was taken from UCX's queue for this receive."""
        return self._req is not None

    @property
    def completed(self) -> bool:
        return self.poll()

    def poll(self) -> bool:
        """Probe for the message unless it was taken; True once the receive is
        complete (or the link gone)."""
        req = self._req
        if req is None:
            if self._gone:
                return True
            taken = self._link.take(self._arr)
            if taken is None:
                self._gone = self._link.ended()
                return self._gone
            req, self.length = taken
            self._req = req
        return bool(req.completed)

    def check_error(self) -> None:
        if self._req is not None:
            self._req.check_error()
        elif self._gone:
            raise self._link.lost_error()


class ProbedFrames:
    """The receive of the out-of-line frames of one message, each into its
    final buffer, checking that each carries exactly its announced size;
    request-like for :class:`Engine`.

    Like :class:`ProbedRecv` (and for the same reason: a posted receive does
    not report its length), each frame is taken through a probe, in order,
    as soon as it is in UCX's queue; its receive then goes straight into the
    frame's buffer (no staging copy). A frame of another length stops the
    message: the frame is still received (a short one into its buffer, a long
    one completes truncated) so that UCX frees it, no further frame is taken,
    and :meth:`check_error` raises ProtocolError naming the peer. Once the
    link is closed or lost, frames not there complete the wait as PeerLost.
    """

    __slots__ = ("_arrays", "_bad", "_gone", "_link", "_reqs", "_sizes")

    def __init__(self, link: TagQueue, arrays: list[Any], sizes: list[int]) -> None:
        self._link = link
        self._arrays = arrays
        self._sizes = sizes
        self._reqs: list[Any] = []
        self._bad: tuple[int, int] | None = None  # (frame index, its length)
        self._gone = False

    @property
    def matched(self) -> bool:
        """True once a frame was taken from UCX's queue for this receive."""
        return bool(self._reqs)

    @property
    def completed(self) -> bool:
        return self.poll()

    def poll(self) -> bool:
        """Take the frames that are there; True once all are received, or the
        receive ended (a frame of the wrong length, the link gone)."""
        reqs = self._reqs
        arrays = self._arrays
        while len(reqs) < len(arrays) and self._bad is None:
            if self._gone:
                break
            i = len(reqs)
            taken = self._link.take(arrays[i])
            if taken is None:
                self._gone = self._link.ended()
                if not self._gone:
                    return False
                break
            req, length = taken
            reqs.append(req)
            if length != self._sizes[i]:
                self._bad = (i, length)
        return all(req.completed for req in reqs)

    def check_error(self) -> None:
        link = self._link
        if self._bad is not None:
            i, length = self._bad
            raise ProtocolError(
                f"frame {i + 1} of {len(self._arrays)} of a message from {link.peer} carries "
                f"{length} bytes but its prefix announced {self._sizes[i]}"
            )
        for req in self._reqs:
            req.check_error()
        if len(self._reqs) < len(self._arrays):
            raise link.lost_error()
