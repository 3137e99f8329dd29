"""The ``threadpool`` provider: pure Python, with the io_uring provider's semantics.

Reads are tried inline at ``commit()`` with ``os.preadv(..., os.RWF_NOWAIT)`` (page-cache
hits cost no thread hop); anything else goes to a small pool of daemon worker threads
that run the plain call, and reads and writes on streams (pipes, sockets, ttys) to one
poller thread per queue. Completions, capacity, waiting, wakeups, closing and fork
behave exactly as with io_uring (SPEC sections 1-3).

One module per concern, each building on those listed before it:

* ``requests``: the request tuples and the plain blocking calls;
* ``shared``: the state shared with the threads (lock, ready deque, eventfd);
* ``streams``: the stream thread, on top of the shared state;
* ``workers``: the worker pool, on top of the stream thread;
* ``lifecycle``: a queue's state, close, garbage collection and fork;
* ``batch``: ``read_many``/``write_many``;
* ``queue``: ``ThreadPoolQueue``: register, prepare, commit, wait;
* ``provider``: ``ThreadPoolProvider``.
"""

from __future__ import annotations

from uringq.providers.threadpool.provider import ThreadPoolProvider
from uringq.providers.threadpool.queue import ThreadPoolQueue

__all__ = ["ThreadPoolProvider", "ThreadPoolQueue"]
