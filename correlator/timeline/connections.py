"""Stitch the lines of one network connection together, on the broker and across to the client.

Broker side. mosquitto is single-threaded: it writes one connection's lines in the order things
happened to it, and the lines that carry no client id yet (`OpenSSL Error[0]: ...`, `Sending CONNACK
to 127.0.0.1 (0, 5)`, `Client <unknown> disconnected, not authorised.`) follow the `New connection
from ip:port on port P` they belong to, possibly with other, established clients' lines in between
(those carry their client ids). So:

- `net.accept` opens a connection, keyed by peer address and port, and makes it the *pending* one
  (accepted, no MQTT session yet);
- an event with a client id goes to the open connection with that id; `mqtt.connect` (`New client
  connected from ip:port as id`) finds the pending connection by address and port and names it;
- an event with no client id (or `<unknown>`) goes to the first pending connection of the newest
  burst of accepts (mosquitto answers in accept order: two clients refused in one second each get
  their own refusal), from the same address when the event names one;
- a line that names the peer address and port (mosquitto 2.1.1+: `Client id [ip:port]
  disconnected: reason.`) goes to the open connection accepted from them, and names it when it was
  nameless; a refusing CONNACK that names a client no session has (2.1: `Sending CONNACK to id (0,
  5)` before any session line) goes with the next line when that line is the same client's (the
  disconnect, which names the port), since several connections may be pending;
- `No will message specified.` and the tab-indented topic lines of a SUBSCRIBE follow the line
  before them;
- the one-line TLS failure `Client connection from ip failed: reason` comes before mosquitto logs
  an accept at all: it is a connection of its own;
- a disconnect (or a broker restart) closes a connection, and so does a new accept on the same
  address and port (a port is one socket at a time); an idle timeout (event time) drops
  connections whose end was never logged. Open connections are all that is kept in memory, and each
  keeps at most `max_events` events per side (the count goes on). Caps (MAX_PENDING, MAX_OPEN,
  MAX_UNLINKED, MAX_HOLD) keep a storm of connections in one second linear and flat; what they let
  go is counted (`overflow`, `overflow_notes()`).

Client side. A client log is cut into *attempts*: a connect step (`net.connect(ing|ed)`,
`mqtt.connect` = sending CONNECT) starts one unless it continues the current one (a later step of
the same attempt), and a failure with no attempt open (a client that only logs the error) is an
attempt of its own. An attempt is linked to the broker connection with the same port (the client's
`local_port` field against the broker's `peer_port`), else with the same client id close in time,
else to the only unlinked broker connection that started within `window` seconds. Unlinked
attempts (refused at TCP level, never reached the broker) are connections of their own.

Clients with no time of their own. `mosquitto_pub -d` prints neither times nor ports, so every
line of its log is dated by the file's modification time (`Event.estimated`), and the broker's
lines of a failed TLS handshake say `Client <unknown>`: neither port, id nor time ties the two.
What is left is that the file time is an upper bound: the client wrote its last line when it gave
up, just after the broker logged the connection. So an attempt of a client source that has shown
no timed line at all is paired, once every timed client had its chance (two `window`s after the
file time), with a broker connection no client claimed (`_unclaimed`: kept `file_time_window`
seconds, at most `max_unclaimed`) that began at or before the file time and was still going
within `file_time_window` before it; with the same client id when the broker knows one (preferred
over the nearest, and then the link is `client_id`), with an outcome that agrees (`compatible`: a
TLS failure is not a refused login), the latest such connection (a file's earlier attempts take
earlier connections, in order). Otherwise the link is `file_time`, weaker than the others, and
reports say so. No pair is made when the chosen connection would fit an unpaired attempt of
another untimed client whose file time is within `window` too: time cannot tell those clients
apart. A connection that was already handed out comes out once more, with its client side
(`Connection.reissued`).

Because a link may be found a moment after the first event of either side was seen, events wait
two `window`s of event time in a small buffer before they leave with `Event.connection` set.
The stitcher expects events in timeline order (the merge's output, skew already corrected).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from correlator.kinds import kind_vocabulary
from correlator.model import Event, FieldValue, is_broker_source, is_opcua_server_source

#: Outcomes, from most to least decisive.
CONNECTED = "connected"
REFUSED = "refused"
TLS_FAILED = "tls_failed"
NET_FAILED = "net_failed"
CLOSED = "closed"
UNKNOWN = "unknown"

UNKNOWN_CLIENT = "<unknown>"

# The kinds of each role, from parsers/vocab/kinds.toml (its [role.*] tables say what each means).
_KINDS = kind_vocabulary()
#: Client-side connect steps, in the order one attempt goes through them (a client may log them in
#: another order: paho logs `Sending CONNECT` inside connect(), before the app logs its socket).
CLIENT_STEPS: dict[str, int] = _KINDS.steps()
CLIENT_TERMINAL = _KINDS.with_role("ends_attempt")
BROKER_UNNAMED = _KINDS.with_role("pending")
BROKER_FOLLOWERS = _KINDS.with_role("follows")
BROKER_RESTART = _KINDS.with_role("restart")
OPENS = _KINDS.with_role("opens")
NAMES = _KINDS.with_role("names")
TAKEOVER = _KINDS.with_role("takeover")
CLOSES = _KINDS.with_role("closes")
BEFORE_SESSION = _KINDS.with_role("before_session")
CONNACK = _KINDS.with_role("connack")
REFUSED_KINDS = _KINDS.with_role("refused")
BROKER_REFUSAL = _KINDS.with_role("broker_refusal")
BROKER_REFUSAL_WHEN = _KINDS.conditional("broker_refusal")
TLS_FAILURE = _KINDS.with_role("tls_failure")
NET_FAILURE = _KINDS.with_role("net_failure")
#: Seconds before its file's time that an untimed client's connection may have been: such a client
#: (mosquitto_pub -d) writes its last line the moment it gives up, so its last connection ends
#: moments before the file's time; the rest allows for a slow handshake and whole-second stamps.
FILE_TIME_WINDOW = 30.0
#: Broker connections with no client side kept for that pairing at most (memory stays bounded on
#: a busy broker whose clients sent no logs).
MAX_UNCLAIMED = 1000
#: Caps that keep time and memory linear whatever the input (a reconnect storm writes hundreds of
#: thousands of `New connection from` lines in one second). What a cap lets go is counted in
#: `Stitcher.overflow` and reported with the analysis: the events still flow and are counted by
#: the rules; only the stitching of the connections let go is cut short.
#: Connections of one broker accepted with no MQTT session yet: beyond it the oldest is let go.
MAX_PENDING = 5000
#: Open connections of every class together: beyond it the least recently active is let go.
MAX_OPEN = 20_000
#: Connections of one side waiting for the other side to link them: beyond it the oldest stops
#: waiting (a storm of attempts within one window cannot be paired by time anyway).
MAX_UNLINKED = 1000
#: Events waiting in the hold for their connection to be final: beyond it the oldest leaves now,
#: with the connection known so far.
MAX_HOLD = 20_000
#: Seconds apart the two sides of one connection may start when a port or client id ties them:
#: mosquitto stamps whole seconds, so its line may read up to a second before the client's.
PORT_SLACK = 1.5
#: Events a connection keeps per side (the first ones: the clock estimate and reports use them).
MAX_CONNECTION_EVENTS = 32
#: Events an open connection of the analysis pipelines keeps per side: its first, whose time and
#: `estimated` the pairing reads; the rest is summed up in counts (`broker_lines`, `client_lines`)
#: and fields (outcome, errors, ids). Up to MAX_OPEN connections are open at once (millions of
#: clients that stay connected), so what each keeps is what memory holds: 32 events each cost
#: 40-60 MB at 20,000 open connections.
SUMMARY_EVENTS = 1


#: What marks the last entry of OpenSSL's error queue for a failed handshake (1.1: `SSL
#: routines:tls_process_...:reason`, 3.x: `SSL routines::reason`); the entries before it come from
#: the libraries underneath (`rsa routines::padding check failed`).
_SSL_ROUTINES = "SSL routines:"


def _broker_refusal(kind: str, fields: dict[str, FieldValue]) -> bool:
    if kind in BROKER_REFUSAL:
        return True
    when = BROKER_REFUSAL_WHEN.get(kind)
    return when is not None and all(fields.get(name) == value for name, value in when.items())


def is_broker(event: Event) -> bool:
    """Whether the event is the server side of a connection: a broker's, or an OPC UA server's
    (its accepts and lost connections name the peer's address and port as mosquitto's do)."""
    return is_broker_source(event.source) or is_opcua_server_source(event.source)


def client_id_of(event: Event) -> str | None:
    value = event.fields.get("client_id")
    if value is None or value in ("", UNKNOWN_CLIENT, "(null)"):
        return None
    return str(value)


def _int(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        return value
    try:
        return int(str(value))
    except ValueError:
        return None


@dataclass(eq=False, slots=True)
class Connection:
    """One network connection as both sides saw it. Fields fill in as lines arrive. Slotted: up to
    MAX_OPEN of them are open at once, and an instance dict would cost a third of each."""

    id: str
    start: float
    end: float
    broker_source: str | None = None
    client_source: str | None = None
    peer_addr: str | None = None
    peer_port: int | None = None
    """The client's source port, as the broker saw it."""
    listener_port: int | None = None
    client_id: str | None = None
    username: str | None = None
    has_username: int | None = None
    """Whether the CONNECT carried a user name (1) or not (0), as either side logged it (paho's
    `Sending CONNECT (u0, ...)`, the broker's `u'name'`); None when no line says."""
    outcome: str = UNKNOWN
    """connected, refused, tls_failed, net_failed (client side only), closed (ended before an MQTT
    session without a TLS error), or unknown."""
    closed: bool = False
    close_reason: str | None = None
    """The broker's disconnect reason (clean, not_authorised, error, keepalive_timeout, takeover,
    ...), 'idle' when evicted, 'broker restart' when the broker restarted."""
    connack_code: int | None = None
    errors: list[str] = field(default_factory=list)
    """Error texts both sides logged (OpenSSL reasons, exception texts), first few."""
    link: str | None = None
    """How the client side was tied to the broker side: 'port', 'client_id', 'time', 'file_time'
    (a client whose lines carry no time, paired by its log file's time: the weakest), or None."""
    broker_events: list[Event] = field(default_factory=list)
    client_events: list[Event] = field(default_factory=list)
    dropped_events: int = 0
    """Events beyond `max_events` per side: counted, not kept."""
    broker_lines: int = 0
    """The broker's events of the connection, kept or not."""
    merged_into: Connection | None = field(default=None, repr=False)
    reissued: bool = False
    """It came out of the stitcher before without a client side and comes out again because an
    untimed client was paired with it later (`file_time`): note who it was, do not count it twice."""

    def resolve(self) -> Connection:
        conn = self
        while conn.merged_into is not None:
            conn = conn.merged_into
        return conn

    @property
    def events(self) -> list[Event]:
        return sorted(self.broker_events + self.client_events, key=lambda e: e.ts)

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "start": self.start, "end": self.end, "broker_source": self.broker_source,
                "client_source": self.client_source, "peer_addr": self.peer_addr, "peer_port": self.peer_port,
                "listener_port": self.listener_port, "client_id": self.client_id, "username": self.username,
                "has_username": self.has_username,
                "outcome": self.outcome, "closed": self.closed, "close_reason": self.close_reason,
                "connack_code": self.connack_code, "errors": list(self.errors), "link": self.link,
                "broker_events": [f"{e.file}:{e.line}" for e in self.broker_events],
                "client_events": [f"{e.file}:{e.line}" for e in self.client_events],
                "dropped_events": self.dropped_events, "broker_lines": self.broker_lines, "reissued": self.reissued}


class _BrokerState:
    """Open connections of one broker source."""

    def __init__(self) -> None:
        self.pending: OrderedDict[str, Connection] = OrderedDict()
        self.by_client: dict[str, Connection] = {}
        self.by_port: dict[tuple[str | None, int], Connection] = {}
        self.previous: Connection | None = None
        self.previous_event: Event | None = None
        """The line `previous` was given last (a connection keeps only its first lines)."""
        self.awaiting: Event | None = None
        """A refusing CONNACK that named a client no session has (mosquitto 2.1): it belongs to the
        connection of the next line, the disconnect that names the port."""


class _ClientState:
    def __init__(self) -> None:
        self.attempt: Connection | None = None
        self.steps: set[int] = set()
        self.ended = False
        self.timed = False
        """Whether any line of the source had a time of its own (then its estimated lines borrowed
        a neighbour's time, and the file-time pairing does not apply)."""
        self.has_username: int | None = None
        """Whether the client is configured with a user name, as its own start line said before
        any attempt: its attempts' CONNECTs carry one, or none."""
        self.refusals: set[str] = set()
        """The refusal kinds the current attempt logged (one CONNECT is refused once)."""


class Stitcher:
    """Assigns events to connections, one event at a time, with bounded state.

    `push(event)` returns the events whose wait is over, with `Event.connection` set; `flush()`
    returns the rest at the end of input. Finished connections come out of `pop_closed()` (the
    pipeline drains it after every push), or of `on_close` when given.
    """

    def __init__(self, *, window: float = 2.0, pending_timeout: float = 120.0, idle_timeout: float = 86400.0,
                 max_events: int = MAX_CONNECTION_EVENTS, on_close: Callable[[Connection], None] | None = None,
                 annotate: bool = True, file_time_window: float = FILE_TIME_WINDOW,
                 max_unclaimed: int = MAX_UNCLAIMED, max_pending: int = MAX_PENDING, max_open: int = MAX_OPEN,
                 max_unlinked: int = MAX_UNLINKED, max_hold: int = MAX_HOLD,
                 reach: Mapping[str, frozenset[str]] | None = None) -> None:
        """`annotate=False` leaves `Event.connection` alone (skew estimation stitches events that
        the real stitcher has labelled, or will label, already). `file_time_window`: how long
        before its file's time an untimed client's connection may have been (module doc)."""
        self.annotate = annotate
        #: Client source -> the broker sources it can talk to (correlator.hosts); absent: any.
        self.reach = dict(reach or {})
        self.window = window
        self.file_time_window = file_time_window
        self.max_unclaimed = max_unclaimed
        self.pending_timeout = pending_timeout
        self.idle_timeout = idle_timeout
        self.max_events = max_events
        self.max_pending = max_pending
        self.max_open = max_open
        self.max_unlinked = max_unlinked
        self.max_hold = max_hold
        self.on_close = on_close
        #: What the caps let go, by cap: 'pending' and 'open' (connections ended early), 'unlinked'
        #: (stopped waiting for their other side), 'hold' (events released before their connection
        #: was final). `let_go_from` counts the connections ended early by peer address.
        self.overflow: dict[str, int] = {}
        self.let_go_from: dict[str, int] = {}
        self._brokers: dict[str, _BrokerState] = {}
        self._clients: dict[str, _ClientState] = {}
        # Live connections by class, each queue ordered by last activity (event time).
        self._lru: dict[str, OrderedDict[int, tuple[float, Connection]]] = {
            "closed": OrderedDict(), "pending": OrderedDict(), "established": OrderedDict()}
        self._where: dict[int, str] = {}
        self._is_broker: dict[str, bool] = {}
        # Unlinked connections of one side, waiting `window` for the other side to show up.
        self._unlinked_broker: OrderedDict[int, Connection] = OrderedDict()
        self._unlinked_client: OrderedDict[int, Connection] = OrderedDict()
        # Broker connections whose wait ended with no client side, kept for untimed clients whose
        # lines arrive later (at their file's time); attempts of untimed clients waiting for their
        # pairing; and those that found no pair, which still make other untimed clients' pairs
        # ambiguous for a while.
        self._unclaimed: OrderedDict[int, Connection] = OrderedDict()
        self._untimed: OrderedDict[int, Connection] = OrderedDict()
        self._untimed_unpaired: deque[Connection] = deque()
        self._hold: deque[tuple[float, Event, Connection | None]] = deque()
        self._closed: list[Connection] = []
        self._now = float("-inf")
        self._count = 0
        self.total = 0

    # ------------------------------------------------------------------ public

    def push(self, event: Event) -> list[Event]:
        if event.ts > self._now:
            self._now = event.ts
        broker = self._is_broker.get(event.source)
        if broker is None:
            broker = self._is_broker[event.source] = is_broker(event)
        conn = self._broker(event) if broker else self._client(event)
        if conn is not None:
            self._touch(conn, event.ts)
        self._hold.append((self._now, event, conn))
        self._count += 1
        if self._unlinked_client or self._untimed:
            self._link_by_time()
        if self._count & 63 == 0:
            self._evict()
        # Twice the window: a link by time is decided one window after an attempt began.
        out = self._release(self._now - 2 * self.window)
        if len(self._hold) > self.max_hold:
            early = len(self._hold) - self.max_hold
            self._count_overflow("hold", early)
            out.extend(self._release(float("inf"), early))
        return out

    def advance(self, seconds: float) -> list[Event]:
        """Move the stitcher's clock on without an event (a live tick while the logs are quiet):
        time links get decided and held events whose wait is over are released."""
        if self._now == float("-inf"):
            return []
        return self.advance_to(self._now + seconds)

    def advance_to(self, now: float) -> list[Event]:
        """Like `advance`, to an absolute event time (live: the wall clock in UTC epoch seconds,
        which a live log's corrected times follow). Never moves the clock back."""
        if now <= self._now:
            return []
        self._now = now
        if self._unlinked_client or self._untimed:
            self._link_by_time()
        self._evict()
        return self._release(self._now - 2 * self.window)

    def feed(self, events: Iterable[Event]) -> Iterator[Event]:
        """Stitch a stream: yields every event once its connection is known, then flushes."""
        for event in events:
            yield from self.push(event)
        yield from self.flush()

    def flush(self) -> list[Event]:
        self._link_by_time(final=True)
        out = self._release(float("inf"))
        for lru in self._lru.values():
            for _, conn in list(lru.values()):
                self._finish(conn)
        self._unlinked_broker.clear()
        self._unlinked_client.clear()
        self._unclaimed.clear()
        self._untimed.clear()
        self._untimed_unpaired.clear()
        self._brokers.clear()
        self._clients.clear()
        self._emit_closed()
        return out

    def overflow_notes(self) -> list[str]:
        """What the caps let go, in words for the report's notes (empty when nothing was)."""
        notes = []
        ended = self.overflow.get("pending", 0) + self.overflow.get("open", 0)
        if ended:
            busiest = sorted(self.let_go_from.items(), key=lambda item: -item[1])[:3]
            where = ", ".join(f"{n:,} from {addr}" for addr, n in busiest)
            notes.append(f"{ended:,} connections were let go before they ended ({where}): more than "
                         f"{self.max_open:,} were open at once, or {self.max_pending:,} waiting for a session on "
                         "one broker (a reconnect storm?); their lines are all counted, but later lines of "
                         "the same connection start a new one")
        if self.overflow.get("unlinked"):
            notes.append(f"{self.overflow['unlinked']:,} connections stopped waiting for their other side: more than "
                         f"{self.max_unlinked:,} waited within one stitching window, too many to pair by time")
        if self.overflow.get("hold"):
            notes.append(f"{self.overflow['hold']:,} events left the stitcher before their connection was final: "
                         f"more than {self.max_hold:,} came within one stitching window")
        return notes

    def pop_closed(self) -> list[Connection]:
        out, self._closed = self._closed, []
        return out

    def open_connections(self) -> list[Connection]:
        return [conn for lru in self._lru.values() for _, conn in lru.values() if not conn.closed]

    # ------------------------------------------------------------------ broker side

    def _new(self, event: Event) -> Connection:
        self.total += 1
        return Connection(id=f"c{self.total}", start=event.ts, end=event.ts)

    def _broker(self, event: Event) -> Connection | None:
        state = self._brokers.get(event.source)
        if state is None:
            state = self._brokers[event.source] = _BrokerState()
        kind = event.kind
        fields = event.fields
        conn: Connection | None = None
        if kind in BROKER_RESTART:
            for old in {id(c): c for c in (*state.pending.values(), *state.by_client.values())}.values():
                self._close(old, "broker restart")
            self._brokers[event.source] = _BrokerState()
            return None
        if kind in OPENS:
            conn = self._new(event)
            conn.broker_source = event.source
            conn.peer_addr = _str(fields.get("peer_addr"))
            conn.peer_port = _int(fields.get("peer_port"))
            conn.listener_port = _int(fields.get("listener_port"))
            if conn.peer_port is not None:
                holder = state.by_port.get((conn.peer_addr, conn.peer_port))
                if holder is not None and holder.id in state.pending:
                    # a port is one socket at a time: the connection that had it is over, unlogged
                    self._close(holder, "port reused")
                state.by_port[(conn.peer_addr, conn.peer_port)] = conn
            state.pending[conn.id] = conn
            if len(state.pending) > self.max_pending:
                self._let_go(next(iter(state.pending.values())), "pending")
            self._wait_unlinked(self._unlinked_broker, conn)
            self._link_broker(conn)
        elif kind in TLS_FAILURE and "peer_addr" in fields and (
                event.format.endswith("connection_failed")
                or self._pending_for(state, _str(fields.get("peer_addr"))) is None):
            # `Client connection from ip failed: reason`: mosquitto logs no accept for it, and one
            # line per entry of OpenSSL's error queue: the library's errors (rsa, asn1, provider
            # routines), then the SSL routines' reason, which ends the queue of that connection.
            conn = self._queue_continued(state, event)
            if conn is None:
                conn = self._new(event)
                conn.broker_source = event.source
                conn.peer_addr = _str(fields.get("peer_addr"))
                self._wait_unlinked(self._unlinked_broker, conn)
        else:
            cid = client_id_of(event)
            if kind in NAMES:
                conn = self._named(state, event, cid)
            elif kind in TAKEOVER and cid is not None:
                conn = state.by_client.pop(cid, None)
            elif (at_port := self._at_port(state, fields)) is not None:
                # mosquitto 2.1.1+ names the connection's address and port in its disconnect lines
                conn = at_port
                if cid is not None and conn.client_id is None:
                    conn.client_id = cid
            elif cid is not None:
                conn = state.by_client.get(cid)
                if conn is None and kind in CONNACK:
                    # mosquitto 2.1 names the client in the CONNACK that refuses it, before any
                    # session line; its next line, the disconnect, names the connection's port
                    state.awaiting = event
                    return None
                if conn is None and kind not in BEFORE_SESSION:
                    # A session from before the log began: group its lines anyway.
                    conn = self._new(event)
                    conn.broker_source = event.source
                    conn.client_id = cid
                    conn.outcome = CONNECTED
                    state.by_client[cid] = conn
            elif kind in BROKER_FOLLOWERS:
                conn = state.previous
            elif kind in BROKER_UNNAMED or (kind.startswith(("tls.", "mqtt.", "auth.")) and "peer_addr" in fields):
                conn = self._pending_for(state, _str(fields.get("peer_addr")))
            if conn is None and kind in BEFORE_SESSION:
                conn = self._pending_for(state, None)
        waiting, state.awaiting = state.awaiting, None
        if conn is None:
            state.previous = state.previous_event = None
            return None
        if waiting is not None and client_id_of(waiting) == conn.client_id:
            self._add(conn, waiting, broker=True)
            self._broker_outcome(state, conn, waiting)
            self._rehold(waiting, conn)
        self._add(conn, event, broker=True)
        self._broker_outcome(state, conn, event)
        state.previous, state.previous_event = conn, event
        return conn

    @staticmethod
    def _queue_continued(state: _BrokerState, event: Event) -> Connection | None:
        """The connection whose failed accept this line goes on reporting: the line before was a
        one-line failure from the same address whose error was not yet the SSL routines' own."""
        prev, last = state.previous, state.previous_event
        if prev is None or last is None or prev.peer_addr != _str(event.fields.get("peer_addr")):
            return None
        if last.format != event.format or last.ts > event.ts + 1 or event.ts - last.ts > 1:
            return None
        return None if _SSL_ROUTINES in str(last.fields.get("error", "")) else prev

    def _named(self, state: _BrokerState, event: Event, cid: str | None) -> Connection:
        fields = event.fields
        addr, port = _str(fields.get("peer_addr")), _int(fields.get("peer_port"))
        conn = state.by_port.get((addr, port)) if port is not None else None
        if conn is None or conn.closed:
            conn = self._pending_for(state, addr)
        if conn is None:
            conn = self._new(event)
            conn.broker_source = event.source
            conn.peer_addr, conn.peer_port = addr, port
        state.pending.pop(conn.id, None)
        if cid is not None:
            conn.client_id = cid
            state.by_client[cid] = conn
        username = fields.get("username")
        if username is not None:
            conn.username = str(username)
        if event.kind == "mqtt.connect":  # mosquitto's `u'name'` is there exactly when a user name was sent
            conn.has_username = 1 if username is not None else 0
        conn.outcome = CONNECTED
        if id(conn) in self._unlinked_broker:
            self._link_broker(conn)
        return conn

    def _rehold(self, event: Event, conn: Connection) -> None:
        """Give an event that waited for its connection (still in the hold, near its end) that
        connection."""
        hold = self._hold
        for i in range(len(hold) - 1, max(-1, len(hold) - 64), -1):
            if hold[i][1] is event:
                hold[i] = (hold[i][0], event, conn)
                return

    @staticmethod
    def _at_port(state: _BrokerState, fields: Mapping[str, FieldValue]) -> Connection | None:
        """The open connection accepted from the line's own peer address and port, when it names
        them (`Client ID [ADDR:PORT] disconnected...`)."""
        port = _int(fields.get("peer_port"))
        if port is None:
            return None
        conn = state.by_port.get((_str(fields.get("peer_addr")), port))
        return None if conn is None or conn.closed else conn

    def _pending_for(self, state: _BrokerState, addr: str | None) -> Connection | None:
        """The pending connection a line that names no client is about: of those accepted in one
        burst (within PORT_SLACK of the newest), the first accepted. mosquitto answers CONNECTs and
        handshakes in the order they arrive, and a client sends its CONNECT as soon as it is
        connected, so two clients refused in one second are answered in their accept order, each
        connection (each port) with its own answer; an older connection still pending (one that
        never spoke) is passed over."""
        newest: Connection | None = None
        chosen: Connection | None = None
        for conn in reversed(state.pending.values()):
            if addr is None or conn.peer_addr is None or conn.peer_addr == addr:
                if newest is None:
                    newest = conn
                elif newest.start - conn.start > PORT_SLACK:
                    break
                chosen = conn
        return chosen

    def _broker_outcome(self, state: _BrokerState, conn: Connection, event: Event) -> None:
        kind, fields = event.kind, event.fields
        if kind in TLS_FAILURE:
            if conn.outcome != CONNECTED:
                conn.outcome = TLS_FAILED
            self._error(conn, fields.get("error"))
            if conn.broker_lines == 1:  # the one-line failure: nothing more will come
                self._close(conn, "error")
        elif kind in CONNACK:
            conn.connack_code = _int(fields.get("connack_code"))
            if kind in REFUSED_KINDS:
                conn.outcome = REFUSED
        elif _broker_refusal(kind, fields):
            if conn.outcome != CONNECTED:
                conn.outcome = REFUSED
            self._error(conn, fields.get("error") or event.raw)
        elif kind in TAKEOVER:
            self._close(conn, "takeover")
        elif kind in CLOSES:
            reason = _str(fields.get("reason"))
            if reason == "not_authorised" and conn.outcome != CONNECTED:
                conn.outcome = REFUSED
            elif conn.outcome == UNKNOWN:
                conn.outcome = CLOSED
            self._error(conn, fields.get("error"))
            self._close(conn, reason or "closed")

    # ------------------------------------------------------------------ client side

    def _client(self, event: Event) -> Connection | None:
        state = self._clients.get(event.source)
        if state is None:
            state = self._clients[event.source] = _ClientState()
        if not event.estimated:
            state.timed = True
        kind = event.kind
        step = CLIENT_STEPS.get(kind)
        conn = state.attempt
        if step is not None:
            # A step starts a new attempt unless it continues the current one. An attempt that so
            # far holds only errors takes the first step: mosquitto_pub's stderr line lands in the
            # file before its buffered stdout.
            if conn is None or step in state.steps or (state.ended and state.steps):
                conn = self._attempt(state, event)
            state.steps.add(step)
        elif kind in CLIENT_TERMINAL and kind not in CLOSES and (
                conn is None or (state.ended and (event.ts - conn.resolve().end > self.window
                                                  or (kind in REFUSED_KINDS and kind in state.refusals)))):
            # A failure with no attempt open is an attempt of its own; follow-up error lines of
            # the same failure (paho logs three) stay with it. A broker answers one CONNECT once:
            # a second refusal of the same kind is the next attempt's, however soon it came (an
            # application that logs only its errors retries within the stitching window).
            conn = self._attempt(state, event)
        if conn is None:
            flag = _int(event.fields.get("has_username"))
            if flag is not None:  # what the client is configured with, said before it connects
                state.has_username = flag
            return None
        conn = conn.resolve()
        self._add(conn, event, broker=False)
        fields = event.fields
        cid = client_id_of(event)
        if cid is not None and conn.client_id is None:
            conn.client_id = cid
        if conn.username is None and isinstance(fields.get("username"), str):
            conn.username = str(fields["username"])
        if conn.listener_port is None:
            # the port the client dials is the broker's listener (its own is `local_port`)
            conn.listener_port = _int(fields.get("peer_port") or fields.get("port"))
        flag = _int(fields.get("has_username"))
        if flag is not None and conn.has_username is None:
            conn.has_username = flag
        port = _int(fields.get("local_port"))
        if port is not None and conn.peer_port is None:
            conn.peer_port = port
            if conn.peer_addr is None and fields.get("local_addr") is not None:
                conn.peer_addr = _str(fields.get("local_addr"))
        if id(conn) in self._unlinked_client:
            self._link_client(conn)
            conn = conn.resolve()
        self._client_outcome(state, conn, event)
        return conn

    def _attempt(self, state: _ClientState, event: Event) -> Connection:
        conn = self._new(event)
        conn.client_source = event.source
        conn.has_username = state.has_username
        state.attempt = conn
        state.steps = set()
        state.refusals = set()
        state.ended = False
        self._wait_unlinked(self._unlinked_client, conn)
        return conn

    def _client_outcome(self, state: _ClientState, conn: Connection, event: Event) -> None:
        kind, fields = event.kind, event.fields
        if kind not in CLIENT_TERMINAL:
            return
        state.ended = True
        if kind in REFUSED_KINDS:
            state.refusals.add(kind)
        error = fields.get("error") or fields.get("tls_reason") or fields.get("net_error") or fields.get("mqtt_reason")
        if conn.broker_source is None or conn.outcome == UNKNOWN:
            if kind in CONNACK and kind not in REFUSED_KINDS:
                code = _int(fields.get("connack_code"))
                conn.outcome = CONNECTED if not code else REFUSED
                state.ended = bool(code)
            elif kind in REFUSED_KINDS:
                conn.outcome = REFUSED
            elif kind in TLS_FAILURE:
                conn.outcome = TLS_FAILED
            elif kind in NET_FAILURE:
                conn.outcome = NET_FAILED
            elif kind in CLOSES and conn.outcome == UNKNOWN:
                conn.outcome = CLOSED
        elif kind in CONNACK and kind not in REFUSED_KINDS and not _int(fields.get("connack_code")):
            state.ended = False
        if conn.connack_code is None and kind in CONNACK:
            conn.connack_code = _int(fields.get("connack_code"))
        if conn.broker_source is None and conn.outcome in (REFUSED, TLS_FAILED, NET_FAILED):
            conn.closed = True  # a client-side failure ends a client-only attempt
        self._error(conn, error)

    # ------------------------------------------------------------------ linking

    def _link_broker(self, broker: Connection) -> None:
        for client in reversed(self._unlinked_client.values()):
            how = self._match(broker, client)
            if how is not None:
                self._merge(broker, client, how)
                return

    def _link_client(self, client: Connection) -> None:
        for broker in reversed(self._unlinked_broker.values()):
            how = self._match(broker, client)
            if how is not None:
                self._merge(broker, client, how)
                return

    def _reaches(self, broker: Connection, client: Connection) -> bool:
        """Whether the client can have talked to this broker at all (another host's broker on
        another port is never its other side, however close in time)."""
        brokers = self.reach.get(client.client_source or "")
        return brokers is None or broker.broker_source in brokers

    def _match(self, broker: Connection, client: Connection) -> str | None:
        # a port or a client id ties the two sides, so time only has to allow for mosquitto's
        # whole-second stamps (up to a second before the client's line), however short the window
        # a live surface chose for its latency
        slack = max(self.window, PORT_SLACK)
        if abs(broker.start - client.start) > slack and abs(broker.end - client.end) > slack:
            return None
        if not self._reaches(broker, client):
            return None
        if client.peer_port is not None and broker.peer_port is not None:
            same_addr = client.peer_addr is None or broker.peer_addr is None or client.peer_addr == broker.peer_addr
            return "port" if client.peer_port == broker.peer_port and same_addr else None
        if client.client_id is not None and broker.client_id is not None:
            return "client_id" if client.client_id == broker.client_id else None
        return None

    def _merge(self, broker: Connection, client: Connection, how: str) -> None:
        self._unlinked_broker.pop(id(broker), None)
        self._unlinked_client.pop(id(client), None)
        self._unclaimed.pop(id(broker), None)
        finished = id(broker) not in self._where  # only an unclaimed one can be: see _pair_untimed
        broker.link = how
        broker.client_source = client.client_source
        broker.client_events.extend(client.client_events)
        if not self._untimed_source(client):  # a file's time bounds an untimed client's lines, no more
            broker.start = min(broker.start, client.start)
            broker.end = max(broker.end, client.end)
        broker.client_id = broker.client_id or client.client_id
        broker.username = broker.username or client.username
        broker.listener_port = broker.listener_port or client.listener_port
        if broker.has_username is None:
            broker.has_username = client.has_username
        if broker.outcome == UNKNOWN:
            broker.outcome = client.outcome
        for error in client.errors:
            self._error(broker, error)
        client.merged_into = broker
        for lru in self._lru.values():
            lru.pop(id(client), None)
        self._where.pop(id(client), None)
        for state in self._clients.values():
            if state.attempt is client:
                state.attempt = broker
        if not finished:
            self._touch(broker, max(broker.end, self._now))
        elif not any(conn is broker for conn in self._closed):
            # handed out already: it comes out once more, now with its client side
            broker.reissued = True
            self._closed.append(broker)

    def _link_by_time(self, *, final: bool = False) -> None:
        """Attempts that waited a full window with no port or id to go by are tied to broker
        connections by time: the oldest such attempt to the oldest compatible broker connection
        within `window`, as long as no other client source has an attempt in that window (then
        time alone cannot tell whose connection it was). A client that retried twice and a broker
        that logged two TLS failures pair up in order."""
        horizon = float("inf") if final else self._now - self.window
        waiting = self._unlinked_client
        while waiting:
            client = next(iter(waiting.values()))
            if client.start > horizon:
                break
            if client.client_events and client.client_events[0].estimated:
                # a time borrowed from neighbours or the file's mtime ties nothing together by
                # closeness; a client with no time at all waits for the file-time pairing
                self._unlinked_client.pop(id(client), None)
                if self._untimed_source(client):
                    self._untimed[id(client)] = client
                    self._park(client)
                continue
            near = next((b for b in self._unlinked_broker.values()
                         if abs(b.start - client.start) <= self.window and compatible(b, client)
                         and self._reaches(b, client)), None)
            rivals = near is not None and any(
                c.client_source != client.client_source and abs(c.start - client.start) <= self.window
                and not (c.client_events and c.client_events[0].estimated) for c in waiting.values())
            if near is not None and not rivals:
                self._merge(near, client, "time")
            else:
                waiting.pop(id(client), None)
        # A broker connection can still pair with an attempt that began up to a window after it.
        unlinked = self._unlinked_broker
        while unlinked:
            broker = next(iter(unlinked.values()))
            if broker.start > horizon - self.window:
                break
            unlinked.pop(id(broker))
            self._unclaim(broker)
        if self._untimed:
            self._pair_untimed(final=final)

    def _untimed_source(self, client: Connection) -> bool:
        """Whether the attempt's client source has shown no line with a time of its own."""
        state = self._clients.get(client.client_source or "")
        return state is not None and not state.timed

    def _unclaim(self, broker: Connection) -> None:
        """A broker connection whose wait for a client side is over: keep it for untimed clients."""
        if broker.client_source is None and broker.broker_source is not None:
            self._unclaimed[id(broker)] = broker
            if len(self._unclaimed) > self.max_unclaimed:
                self._unclaimed.popitem(last=False)

    def _pair_untimed(self, *, final: bool) -> None:
        """Pair the attempts of untimed clients whose wait is over (two windows after their file's
        time: every timed attempt that could claim a connection from before that time has had its
        turn) with unclaimed broker connections, a source's attempts from its last to its first."""
        horizon = float("inf") if final else self._now - 2 * self.window
        ready: dict[str, list[Connection]] = {}
        for attempt in self._untimed.values():
            if attempt.end <= horizon:
                ready.setdefault(attempt.client_source or "", []).append(attempt)
        for attempts in ready.values():
            for attempt in attempts:
                del self._untimed[id(attempt)]
            before: tuple[float, int] | None = None
            for attempt in reversed(attempts):
                broker = self._file_time_candidate(attempt, before)
                if broker is not None:
                    # the broker naming the client id the log names is the stronger tie
                    same_id = broker.client_id is not None and broker.client_id == attempt.client_id
                    self._merge(broker, attempt, "client_id" if same_id else "file_time")
                    before = (broker.start, _seq(broker))
            for attempt in attempts:
                if attempt.merged_into is None:
                    self._untimed_unpaired.append(attempt)
                    self._touch(attempt, max(attempt.end, self._now))  # finished like any attempt

    def _file_time_candidate(self, attempt: Connection, before: tuple[float, int] | None) -> Connection | None:
        """The unclaimed broker connection an untimed attempt is paired with, or None: one that
        began by the attempt's (file) time and had not ended `file_time_window` before it, before
        `before` (the connection a later attempt of the same file took), compatible; the one with
        the same client id, else the latest. None when another untimed client fits it as well."""
        at = attempt.end
        best: Connection | None = None
        best_rank: tuple[bool, float, int] | None = None
        for broker in self._unclaimed.values():
            if not self._fits_file_time(broker, attempt):
                continue
            order = (broker.start, _seq(broker))
            if before is not None and order >= before:
                continue
            same_id = broker.client_id is not None and broker.client_id == attempt.client_id
            rank = (same_id, *order)
            if best_rank is None or rank > best_rank:
                best, best_rank = broker, rank
        if best is None:
            return None
        for other in (*self._untimed.values(), *self._untimed_unpaired):
            if (other.client_source != attempt.client_source and other.merged_into is None
                    and abs(other.end - at) <= self.window and self._fits_file_time(best, other)):
                return None  # time cannot tell which of the two untimed clients it was
        return best

    def _fits_file_time(self, broker: Connection, attempt: Connection) -> bool:
        return (broker.start <= attempt.end and broker.end >= attempt.end - self.file_time_window
                and compatible(broker, attempt) and self._reaches(broker, attempt))

    # ------------------------------------------------------------------ bookkeeping

    def _add(self, conn: Connection, event: Event, *, broker: bool) -> None:
        if broker:
            conn.broker_lines += 1
        events = conn.broker_events if broker else conn.client_events
        if len(events) < self.max_events:
            events.append(event)
        else:
            conn.dropped_events += 1
        if event.ts > conn.end:
            conn.end = event.ts
        if event.ts < conn.start:
            conn.start = event.ts

    def _error(self, conn: Connection, error: Any) -> None:
        if error and len(conn.errors) < 8:
            text = str(error)
            if text not in conn.errors:
                conn.errors.append(text)

    def _touch(self, conn: Connection, ts: float) -> None:
        """Move a connection to the back of its class's queue: closed ones wait `window` for the
        other side, pending ones `pending_timeout`, established sessions `idle_timeout`."""
        key = id(conn)
        cls = "closed" if conn.closed else ("established" if conn.outcome == CONNECTED else "pending")
        was = self._where.get(key)
        if was is not None and was != cls:
            self._lru[was].pop(key, None)
        lru = self._lru[cls]
        lru[key] = (ts, conn)
        if was == cls:
            lru.move_to_end(key)
        self._where[key] = cls

    def _close(self, conn: Connection, reason: str | None) -> None:
        if not conn.closed:
            conn.closed = True
            conn.close_reason = conn.close_reason or reason
        for state in self._brokers.values():
            state.pending.pop(conn.id, None)
            if conn.client_id is not None and state.by_client.get(conn.client_id) is conn:
                del state.by_client[conn.client_id]
            if conn.peer_port is not None and state.by_port.get((conn.peer_addr, conn.peer_port)) is conn:
                del state.by_port[(conn.peer_addr, conn.peer_port)]
        self._touch(conn, max(conn.end, self._now))

    def _park(self, conn: Connection) -> None:
        """Take an attempt out of the eviction queues while it waits for its file-time pairing."""
        cls = self._where.pop(id(conn), None)
        if cls is not None:
            self._lru[cls].pop(id(conn), None)

    def _finish(self, conn: Connection) -> None:
        if not conn.closed:
            self._close(conn, "idle")
        key = id(conn)
        for lru in self._lru.values():
            lru.pop(key, None)
        self._where.pop(key, None)
        if self._unlinked_broker.pop(key, None) is not None:
            self._unclaim(conn)
        self._unlinked_client.pop(key, None)
        for state in self._clients.values():
            if state.attempt is conn:
                state.attempt = None
        self._closed.append(conn)

    def _evict(self) -> None:
        self._link_by_time()
        now = self._now
        # Unclaimed connections are kept while an untimed client's file time could still reach
        # them (its own wait included), oldest first; a long session at the front waits for the cap.
        oldest = now - self.file_time_window - 3 * self.window
        while self._unclaimed and next(iter(self._unclaimed.values())).end < oldest:
            self._unclaimed.popitem(last=False)
        while self._untimed_unpaired and self._untimed_unpaired[0].end < now - 4 * self.window:
            self._untimed_unpaired.popleft()
        limits = {"closed": self.window, "pending": self.pending_timeout, "established": self.idle_timeout}
        for cls, lru in self._lru.items():
            limit = limits[cls]
            while lru:
                last, conn = next(iter(lru.values()))
                if last + limit > now:
                    break
                if id(conn) in self._unlinked_broker and conn.start + 2 * self.window > now:
                    # still waiting for an attempt that began up to a window after it: finished
                    # when that wait ends (by _link_by_time), not earlier, so whether it pairs
                    # depends on the events' times only, never on how many lines came between
                    self._touch(conn, conn.start + self.window)
                    continue
                self._finish(conn)
        while len(self._where) > self.max_open:
            # closed ones waiting for their other side go first, then the least recently active
            lru = self._lru["closed"] or min((q for q in (self._lru["pending"], self._lru["established"]) if q),
                                            key=lambda q: next(iter(q.values()))[0])
            self._let_go(next(iter(lru.values()))[1], "open")
        self._emit_closed()

    def _count_overflow(self, cap: str, n: int = 1) -> None:
        self.overflow[cap] = self.overflow.get(cap, 0) + n

    def _let_go(self, conn: Connection, cap: str) -> None:
        """A cap ends an open connection early: it leaves as if idle, and is counted."""
        self._count_overflow(cap)
        addr = conn.peer_addr or conn.client_source or conn.broker_source or "?"
        if addr not in self.let_go_from and len(self.let_go_from) >= 100:
            addr = "other addresses"  # a storm from many addresses: the first hundred are named
        self.let_go_from[addr] = self.let_go_from.get(addr, 0) + 1
        self._close(conn, "too many open")
        self._finish(conn)

    def _wait_unlinked(self, waiting: OrderedDict[int, Connection], conn: Connection) -> None:
        """Wait for the other side to show up; beyond the cap the oldest waiting stops."""
        waiting[id(conn)] = conn
        if len(waiting) > self.max_unlinked:
            _, oldest = waiting.popitem(last=False)
            self._count_overflow("unlinked")
            if waiting is self._unlinked_broker:
                self._unclaim(oldest)

    def _emit_closed(self) -> None:
        if self.on_close is not None and self._closed:
            for conn in self._closed:
                self.on_close(conn)
            self._closed = []

    def _release(self, horizon: float, most: int | None = None) -> list[Event]:
        hold = self._hold
        out: list[Event] = []
        left = len(hold) if most is None else most
        while hold and left > 0 and hold[0][0] <= horizon:
            left -= 1
            _, event, conn = hold.popleft()
            if self.annotate:
                final = conn.resolve() if conn is not None else None
                event.connection = final.id if final is not None else None
                if final is not None:
                    # every line of the connection says which listener it came to (a TLS failure is
                    # judged by that listener's certfile) and whether its CONNECT carried a user name
                    _carry(event, final)
            out.append(event)
        return out


#: What a connection knows that each of its lines stands for, though only one line said it: the
#: listener it came in on (`New connection from ... on port P`), whether its CONNECT carried a
#: user name (the client's log), the client log its other side is in (the client's own
#: configuration is found by it) and the broker log of its broker side (a client line is judged on
#: the host of the broker it talked to, when several brokers could have been). A refusal line is
#: judged with them: one connection is classified from all of its lines, not line by line.
CARRIED = ("listener_port", "has_username", "client_source", "broker_source")


def _carry(event: Event, conn: Connection) -> None:
    fields = event.fields
    for name in CARRIED:
        value = getattr(conn, name)
        if value is not None and name not in fields:
            fields[name] = value


def compatible(broker: Connection, client: Connection) -> bool:
    """Whether two sides could be one connection: no contradicting port or id, and outcomes that
    agree (a broker-side TLS failure is a client-side TLS or network failure, and so on)."""
    if client.peer_port is not None and broker.peer_port is not None and client.peer_port != broker.peer_port:
        return False
    if client.client_id is not None and broker.client_id is not None and client.client_id != broker.client_id:
        return False
    if UNKNOWN in (broker.outcome, client.outcome) or broker.outcome == client.outcome:
        return True
    return {broker.outcome, client.outcome} in ({TLS_FAILED, NET_FAILED}, {CLOSED, NET_FAILED}, {CLOSED, TLS_FAILED})


def _str(value: Any) -> str | None:
    return None if value is None else str(value)


def _seq(conn: Connection) -> int:
    """The order connections were made in (their ids are c1, c2, ...)."""
    return int(conn.id[1:])


def stitch(events: Iterable[Event], **options: Any) -> tuple[list[Event], list[Connection]]:
    """Batch helper: stitch a whole (merged, ordered) stream; returns events and connections."""
    connections: list[Connection] = []
    stitcher = Stitcher(on_close=connections.append, **options)
    out = list(stitcher.feed(events))
    connections.extend(stitcher.pop_closed())
    connections = list({id(c): c for c in connections}.values())  # a reissued one is listed once
    connections.sort(key=lambda c: (c.start, int(c.id[1:])))
    return out, connections
