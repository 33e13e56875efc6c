"""Which app wrote a file, told from its start and name; anything else is refused by name."""

from __future__ import annotations

import pytest

from sync.imports import ImportReader, UnsupportedFormat, detect_source
from sync.imports.detect import PEEK_BYTES

from .import_support import OURS, REAL

EXPECTED = {
    REAL / "chatbotui-export.json": "chatbot-ui",
    REAL / "chatgpt-citations.json": "chatgpt",
    REAL / "chatgpt-export.json": "chatgpt",
    REAL / "chatgpt-modern-export.json": "chatgpt",
    REAL / "chatgpt-tree.json": "chatgpt",
    REAL / "librechat-export.json": "librechat",
    REAL / "librechat-opts-nonr-branches.json": "librechat",
    REAL / "librechat-tree.json": "librechat",
    REAL / "openwebui-export.json": "openwebui",
    REAL / "vestai-linear.json": "librechat",
    OURS / "big-agi" / "backup.agi.json": "big-agi",
    OURS / "big-agi" / "regex-help.agi.json": "big-agi",
    OURS / "speechbot" / "shared_prefs.json": "speechbot",
    OURS / "speechbot" / "FlutterSharedPreferences.xml": "speechbot",
    OURS / "chatbot" / "conversations" / "17.json": "chatbot-json",
    OURS / "chatbot" / "conversations" / "19.json": "chatbot-json",
    OURS / "chatbot" / "conversations" / "21-latin1.json": "chatbot-json",
}


@pytest.mark.parametrize("path", list(EXPECTED), ids=lambda p: p.name)
def test_each_sample_is_told_by_its_start(path):
    assert detect_source(path.name, path.read_bytes()[:PEEK_BYTES]) == EXPECTED[path]


def test_a_parley_export_and_archive_are_recognised():
    document = b'{"format": "parley-export", "format_version": 1, "header": {}}'
    ndjson = b'{"type":"header","format_version":1,"user_id":"u"}\n{"type":"end"}\n'
    assert detect_source("export.json", document) == "parley"
    assert detect_source("archive.ndjson", ndjson) == "parley"


def test_a_chatgpt_file_is_told_from_a_prefix_cut_mid_value():
    head = b'[{"title": "x", "create_time": 1.5, "mapping": {"a": {"id": "a", "mess'
    assert detect_source("conversations.json", head) == "chatgpt"


@pytest.mark.parametrize(
    ("head", "seen"),
    [
        (b'{"kind": "notes", "items": []}', "a JSON object with keys items, kind"),
        (b'[{"question": "q"}]', "a JSON array of objects with keys question"),
        (b"# Heading\nplain text", "not JSON (starts with '# Heading"),
    ],
)
def test_an_unknown_file_is_refused_naming_what_it_is(head, seen):
    with pytest.raises(UnsupportedFormat) as raised:
        detect_source("notes.json", head)
    assert raised.value.code == "UNSUPPORTED_FORMAT"
    assert "notes.json" in raised.value.message
    assert seen in raised.value.message


def test_an_unknown_file_given_alone_refuses_the_import(tmp_path):
    path = tmp_path / "notes.json"
    path.write_text('{"kind": "notes"}')
    with pytest.raises(UnsupportedFormat, match=r"notes\.json: a JSON object with keys kind"):
        list(ImportReader([path]).records())


def test_an_unknown_declared_source_is_refused():
    with pytest.raises(UnsupportedFormat, match="unknown source 'whatsapp'"):
        ImportReader([b"{}"], source="whatsapp")
