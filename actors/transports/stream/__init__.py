"""Stream transports: ``tcp://`` and ``shm://`` links over one framing.

Both carry ``(header, buffers)`` messages as length-prefixed frames over a
socket; ``shm://`` moves large buffers through shared-memory segments and
sends only their announcements over the socket.
"""
