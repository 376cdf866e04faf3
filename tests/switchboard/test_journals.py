"""``journal.kind`` builds the journal it names: the append-only file journal (``file``) at its directory."""

from __future__ import annotations

from pathlib import Path

from journal.logfile import FileJournal
from switchboard.config import load_settings
from switchboard.journals import build_journal


def test_kind_file_builds_the_file_journal_in_its_directory_or_beside_the_key_state_file(tmp_path: Path) -> None:
    configured = build_journal(load_settings(env={"SWITCHBOARD_JOURNAL__KIND": "file",
                                                  "SWITCHBOARD_JOURNAL__FILE__PATH": str(tmp_path / "j"),
                                                  "SWITCHBOARD_JOURNAL__FILE__SEGMENT_BYTES": "8192"}), embedded=True)
    assert isinstance(configured, FileJournal)
    assert configured.path == tmp_path / "j" and configured.settings.segment_bytes == 8192
    default = build_journal(load_settings(env={"SWITCHBOARD_JOURNAL__KIND": "file",
                                               "SWITCHBOARD_KEYS__STATE_FILE": str(tmp_path / "state" / "keys.json")}),
                            embedded=True)
    assert isinstance(default, FileJournal) and default.path == tmp_path / "state" / "journal.d"
