"""Settings of the journals (section ``[journal]``): the embedded server's SQLite journal
(``[journal.sqlite]``) and the RabbitMQ stream journal of a cluster (``[journal.stream]``)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

__all__ = ["JournalSettings", "Durability", "Commit", "StreamJournalSettings", "FileJournalSettings"]

#: ``normal`` (the default): an append returns once its record is written to the OS (WAL with
#: ``synchronous=NORMAL``), committed on the event loop's thread (``commit``): it
#: survives the process dying in any way (``kill -9``, a crash), since the OS writes it out on its own; a
#: power cut or an OS crash may lose the commits the OS had not written out yet (up to half a minute's
#: with Linux's defaults) but leaves the file sound.
#: ``full``: once it is fsync'd (``synchronous=FULL``), by a writer thread: it survives a power cut
#: too, at more server CPU and latency per relayed message (``bench/NOTES.md``).
#: ``off``: like ``normal``, but a power cut may corrupt the file; for tests and benchmarks only.
Durability = Literal["full", "normal", "off"]

#: With ``durability`` ``normal`` or ``off``: ``turn`` commits the writes of one event-loop turn, every
#: room's, in one transaction at the end of the turn (a request is answered after it); ``each`` commits
#: a request's record as it is made (``append_now``), so the request is answered in the same turn.
Commit = Literal["turn", "each"]

_AtLeastOne = Annotated[int, msgspec.Meta(ge=1)]


class JournalSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    #: SQLite database file on local disk (its ``-wal`` and ``-shm`` files sit beside it); empty: the
    #: file ``journal.sqlite3`` beside the key state file (``$XDG_STATE_HOME/switchboard/``).
    path: str = ""
    #: When an append may return: ``normal`` once the OS has it (survives the process dying, not a power
    #: cut: that may lose the last commits); ``full`` once it is fsync'd (survives a power cut, costs
    #: more CPU and latency per message); ``off`` as ``normal``, but a power cut may corrupt the file.
    durability: Durability = "normal"
    #: With ``durability`` ``normal`` or ``off``, when a request's record is committed: ``turn`` with the
    #: other writes of its event-loop turn, every room's, in one transaction (the request waits for the end
    #: of the turn: one transaction for many requests under load); ``each`` at once, in a transaction of its
    #: own (the request is answered in the same turn: a little less CPU and latency when idle, a
    #: transaction per request under load; ``bench/NOTES.md``).
    commit: Commit = "turn"
    #: Appends (and other writes) accepted but not yet committed; beyond this, ``append`` waits.
    max_pending: _AtLeastOne = 10000
    #: Most writes one transaction carries (group commit takes whatever queued up meanwhile).
    max_batch: _AtLeastOne = 1000
    #: With ``durability`` ``normal`` or ``off`` (commits on the event loop): writes (records, snapshots,
    #: claims) committed between two checkpoints of the WAL, which run on the writer thread while writes
    #: wait.  The WAL grows by one to three pages (4 KiB each) per write until then, however many writes
    #: a transaction carries; each checkpoint costs two fsyncs.
    checkpoint_every: _AtLeastOne = 1000
    #: Seconds SQLite waits for a lock held by another connection before the operation fails (with
    #: ``durability`` ``normal`` or ``off`` the event loop waits with it: keep the file to one process).
    busy_timeout: Annotated[float, msgspec.Meta(ge=0)] = 5.0
    #: Records kept after a snapshot: ``False`` drops a room's records at or below its newest snapshot.
    keep_snapshotted: bool = False


class StreamJournalSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """The RabbitMQ stream journal (:class:`journal.stream.StreamJournal`).  Every journal on one broker
    must use the same stream sizes: a stream refuses a second declare with other arguments
    (``inequivalent arg``)."""

    #: Stream names start with this: ``<prefix>room.<room>``, ``<prefix>snap.<room>``, ``<prefix>rooms`` (and
    #: with the holder journal ``<prefix>holder.<journal>.<incarnation>`` and ``<prefix>holders``).
    prefix: str = "journal."
    #: AMQP heartbeat, seconds: a dead broker connection is noticed after 2–3 of these.
    heartbeat: int = 5
    #: Longest a connection attempt may take, seconds.
    connect_timeout: float = 5.0
    #: Longest one append or claim waits for its confirm and for its record to come back, seconds.
    append_timeout: float = 10.0
    #: Longest a write to a room's stream may wait for its confirm, or for its record to come back, while
    #: no other write to the room got either, seconds (at most ``append_timeout``): then the journal takes
    #: its connection for stuck, leaves it (failing the writes on it) and goes on at the next broker node.
    #: Measured on RabbitMQ 3.10: after a node of a cluster was lost, a room's stream may take no write at
    #: all through the connection to another node (docs/operations.md, *Broker cluster*).
    stall_timeout: float = 1.0
    #: Longest a replay, a snapshot read or a rooms() read may take in all, seconds.
    read_timeout: float = 60.0
    #: How long to keep trying to attach a consumer to a stream, seconds: after a broker start a stream
    #: refuses consumers for ~10 s (measured, docs/design-notes.md), and each refusal closes the connection.
    attach_timeout: float = 30.0
    #: Seconds between attempts to attach (and to reconnect while attaching).
    attach_retry_interval: float = 0.5
    #: Longest the broker may take to accept one stream consumer, seconds: one that gets no answer leaves
    #: the connection, and the next attempt (within ``attach_timeout``) goes to the next broker node
    #: (after a node of a cluster is lost, a stream's member on another node may never answer).
    consume_timeout: float = 2.0
    #: Appends and claims of one journal in flight at once; more wait (within ``append_timeout``).
    max_in_flight: int = 1000
    #: Rooms one journal follows at once (a consumer and a channel each, to learn its appends' offsets);
    #: beyond this the least recently written-to room is let go.  At most 2,000: RabbitMQ allows 2,047
    #: channels per connection by default, and reads need a few more.
    max_followed_rooms: int = 1000
    #: Unacknowledged deliveries per stream consumer (basic.qos; mandatory on streams).
    prefetch: int = 1000
    #: A consumer acknowledges every this many deliveries (at most half of ``prefetch``).
    ack_every: int = 100
    #: Retention of a room's stream, bytes (``x-max-length-bytes``); whole segments are dropped, oldest
    #: first, so keep it above a room's events between two snapshots.
    room_max_bytes: int = 200_000_000
    #: Segment size of a room's stream, bytes (``x-stream-max-segment-size-bytes``).
    room_segment_bytes: int = 20_000_000
    #: Retention of a room's snapshot stream, bytes: reading the newest snapshot reads at most this plus one
    #: segment.  The newest snapshot is always kept (the active segment is never dropped).
    snapshot_max_bytes: int = 2_000_000
    #: Segment size of a room's snapshot stream, bytes.
    snapshot_segment_bytes: int = 1_000_000
    #: Retention of the rooms directory stream (one small record per claim and per forget), bytes.
    rooms_max_bytes: int = 100_000_000
    #: Segment size of the rooms directory stream, bytes.
    rooms_segment_bytes: int = 10_000_000
    #: With ``journal.kind = "holder"`` only: seconds the next holder message waits, after one that carried
    #: records of several appends, for more to join it (0: it goes out as soon as the one before is done).
    #: A message after one that carried a single record never waits, so a light load is not delayed; under
    #: load more records share a message, which is what the broker's CPU is spent per (bench/NOTES.md,
    #: docs/holder-journal.md "Measured"): 0 to 0.1.
    holder_hold: float = 0.008
    #: With ``journal.kind = "holder"`` only: a room's replay reads its window of the holder stream from the
    #: window's start (or its snapshot) on, every room's messages included.  Once this journal's holder stream
    #: has moved this many messages past where a room it holds would start replaying, whatever the room's own
    #: record count, the journal asks the controller for a snapshot of the room (which then starts its replay
    #: there, even for a room that wrote nothing since): a takeover reads at most about this many messages per
    #: window.  100 to 10,000,000.
    holder_snapshot_after: int = 5_000
    #: With ``journal.kind = "holder"`` only: rooms that replay windows of one holder stream at the same time
    #: (a dead holder's rooms taken over together) share one read of it.  A room that joins the read after it
    #: passed the room's start is handed what it missed from what the read keeps: at most this many bytes of
    #: entries per holder stream read (beyond that, it stops keeping them, and a room that joins late reads on
    #: its own).  0: every room's replay reads on its own.  0 to 1,000,000,000.
    holder_replay_share_bytes: int = 64_000_000
    #: With ``journal.kind = "holder"``: retention of each holder stream (the records of all of one journal's
    #: rooms), bytes.  Whole segments are dropped, oldest first; a room whose window start is dropped replays
    #: only what is left of it.  Size it as the controller's journal rate × the longest time a room's replay
    #: may reach back (to its newest snapshot, or its window start): at the relay's saturation (~500 records
    #: a second of ~150 bytes, ~100 kB/s with the entry and message framing) the default holds ~2.5 h, against
    #: ~30 min for ``room_max_bytes``.  Retention keeps at least this minus one segment; snapshots forced by
    #: holder progress must come well inside that.  Every broker node keeps up to this per live journal
    #: (dead journals' streams are swept).  At least 1 MB.
    holder_max_bytes: int = 1_000_000_000
    #: Segment size of a holder stream, bytes: retention drops this much at a time (2 files each).
    holder_segment_bytes: int = 50_000_000
    #: With ``journal.kind = "holder"``: seconds without a sign of life from a journal instance (it notes one in
    #: ``<prefix>holders`` every quarter of this) after which its holder stream may be swept (10 to 86,400).
    #: A journal cut off from the broker longer than this, whose rooms all moved meanwhile, finds its stream
    #: deleted: its writes then fail (it never declares it again).  Every journal on one broker must use the
    #: same value: a sweeper judges the others' signs of life by its own.
    holder_dead_after: float = 600.0
    #: With ``journal.kind = "holder"``: seconds between two rounds of this journal's sweeper of dead holder
    #: streams (0: this journal sweeps none; 0.05 to 86,400).  Every journal may sweep; deletes are idempotent.
    holder_sweep_interval: float = 300.0
    #: Holder streams one sweep round looks at, at most (each: the claims logs of the rooms it ever held and
    #: their newest snapshots): 1 to 1,000.
    holder_sweep_batch: int = 10

    def __post_init__(self) -> None:
        for name in ("connect_timeout", "append_timeout", "read_timeout", "attach_timeout", "attach_retry_interval",
                     "consume_timeout", "stall_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"journal: {name} must be positive")
        if self.stall_timeout > self.append_timeout:
            raise ValueError("journal: stall_timeout must not exceed append_timeout")
        if self.max_in_flight < 1 or self.prefetch < 2:
            raise ValueError("journal: max_in_flight must be at least 1 and prefetch at least 2")
        if not 1 <= self.max_followed_rooms <= 2000:
            raise ValueError("journal: max_followed_rooms must be between 1 and 2000 (channels per connection)")
        if not 1 <= self.ack_every <= self.prefetch // 2:
            raise ValueError("journal: ack_every must be between 1 and prefetch / 2")
        if not 0 <= self.holder_hold <= 0.1:
            raise ValueError("journal: holder_hold must be between 0 and 0.1 s")
        if not 100 <= self.holder_snapshot_after <= 10_000_000:
            raise ValueError("journal: holder_snapshot_after must be between 100 and 10,000,000 messages")
        if not 0 <= self.holder_replay_share_bytes <= 1_000_000_000:
            raise ValueError("journal: holder_replay_share_bytes must be between 0 and 1,000,000,000")
        if self.holder_max_bytes < 1_000_000:
            raise ValueError("journal: holder_max_bytes must be at least 1000000")
        if not 10 <= self.holder_dead_after <= 86400:
            raise ValueError("journal: holder_dead_after must be between 10 and 86400 s")
        if not (self.holder_sweep_interval == 0 or 0.05 <= self.holder_sweep_interval <= 86400):
            raise ValueError("journal: holder_sweep_interval must be 0 (no sweeping) or between 0.05 and 86400 s")
        if not 1 <= self.holder_sweep_batch <= 1000:
            raise ValueError("journal: holder_sweep_batch must be between 1 and 1000")
        for kind in ("room", "snapshot", "rooms", "holder"):
            if getattr(self, f"{kind}_segment_bytes") > getattr(self, f"{kind}_max_bytes"):
                raise ValueError(f"journal: {kind}_segment_bytes must not exceed {kind}_max_bytes")


class FileJournalSettings(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The embedded server's journal as append-only files of our own (:class:`journal.logfile.FileJournal`)."""

    #: Directory of the journal's segment files (and its ``LOCK`` file) on local disk; empty: the
    #: directory ``journal.d`` beside the key state file (``$XDG_STATE_HOME/switchboard/``).
    path: str = ""
    #: When a write's outcome is handed over: ``normal`` once its frame is written to the OS (survives the
    #: process dying, not a power cut: that may lose the last writes); ``full`` once it is fdatasync'd
    #: by a writer thread (survives a power cut too).
    durability: Literal["full", "normal"] = "normal"
    #: With ``durability = "normal"``, when a request's record is written: ``turn`` with the other writes
    #: of its event-loop turn, every room's, in one ``write`` at the end of the turn (the request waits for
    #: the end of the turn); ``each`` at once, a ``write`` of its own (the request is answered in the same
    #: turn, with no task and no loop turn of its own).
    commit: Commit = "turn"
    #: Writes accepted but not yet written; beyond this, ``append`` waits (and so does the controller's
    #: next record).
    max_pending: _AtLeastOne = 10000
    #: Size a segment file may reach before the next one is started, bytes.  A segment is deleted once
    #: none of its records and snapshots is needed (snapshotted, forgotten or superseded), so the
    #: directory holds about the rooms' records since their snapshots, plus up to a segment.  When a
    #: segment is sealed, an index of every room's state and live records' places is written beside it
    #: (``<number>.idx``): opening the journal reads that index and scans only the segments after it
    #: (~3 µs per frame), i.e. at most about a segment; without a usable index it scans every segment.
    segment_bytes: Annotated[int, msgspec.Meta(ge=4096)] = 8 * 1024 * 1024
    #: Records kept after a snapshot: ``False`` lets a room's records at or below its newest snapshot go
    #: (their segment is deleted once nothing else in it is needed).
    keep_snapshotted: bool = False
