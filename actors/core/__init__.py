"""The actor core: the one actor runtime of the package.

``Actor`` (what a user subclasses), ``ActorSystem`` (one per process: spawns,
supervises and stops actors; serves them to other processes), ``ActorRef``
(location-transparent handle), supervision policies, and remote refs over a
link. The public names are re-exported by :mod:`actors`.
"""
