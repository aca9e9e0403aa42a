"""The fleet: API nodes and analysis workers on several machines, joined by NATS JetStream.

`correlator serve --nats URL` keeps every upload in a JetStream object store and queues one job
per analysis on a work-queue stream (queue.py); `correlator worker --nats URL` takes jobs from
that stream, on any number of processes and machines, and runs each the one way the embedded
server runs it (correlator/api/jobs.py and worker.py), writing the results into the shared store
keyed by analysis id (worker_loop.py). The streams, the bucket and their limits are in layout.py;
link.py holds the one NATS connection each process keeps, process.py what both kinds of worker
(jobs, and the live sites of live_worker.py) share in running and stopping. Nothing here imports
the web stack.
"""

from __future__ import annotations

from correlator.errors import CorrelatorError

#: Shards the sites are hashed into unless the setting `fleet_shards` says otherwise (every agent,
#: live worker and API node of a cluster must share it), so at most this many live workers share
#: the sites. Here, beside nothing of NATS, so the settings can name it without loading the client.
DEFAULT_SHARDS = 32


class QueueUnavailable(CorrelatorError):
    """The NATS cluster does not answer, or refuses (a full stream): the API answers 503. Here,
    not in link.py, so the API can name it without loading the NATS client."""
