"""The progress view: rich in a terminal, plain lines in a pipe, JSON lines with --json."""

from __future__ import annotations

import io
import json

from dlcfn.progress import Look, Progress, Update, choose_look


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_choose_look() -> None:
    assert choose_look(Tty(), json_output=False, environ={"TERM": "xterm"}) is Look.RICH
    assert choose_look(io.StringIO(), json_output=False, environ={"TERM": "xterm"}) is Look.PLAIN
    assert choose_look(Tty(), json_output=False, environ={"TERM": "dumb"}) is Look.PLAIN
    assert choose_look(Tty(), json_output=True, environ={"TERM": "xterm"}) is Look.JSON


def run(look: Look, stream: io.StringIO) -> None:
    now = [0.0]
    with Progress("create-stack c", look, stream=stream, clock=lambda: now[0]) as p:
        now[0] = 1.5
        p.update(Update("MasterInstance", "AWS::EC2::Instance", "CREATE_IN_PROGRESS"))
        now[0] = 30.0
        p.update(Update("MasterInstance", "AWS::EC2::Instance", "CREATE_FAILED", "The key pair 'k' does not exist"))
        p.note("rolling back")


def test_plain_is_one_line_per_update_without_escapes() -> None:
    out = io.StringIO()
    run(Look.PLAIN, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "create-stack c"
    assert lines[1].split() == ["1.5s", "MasterInstance", "AWS::EC2::Instance", "CREATE_IN_PROGRESS"]
    assert lines[2].split()[:4] == ["30.0s", "MasterInstance", "AWS::EC2::Instance", "CREATE_FAILED"]
    assert lines[2].endswith("The key pair 'k' does not exist") and lines[3].split() == ["30.0s", "rolling", "back"]
    assert "\x1b" not in out.getvalue()


def test_json_lines_parse() -> None:
    out = io.StringIO()
    run(Look.JSON, out)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["event"] for r in records] == ["start", "update", "update", "note"]
    assert records[2] == {"event": "update", "elapsed_s": 30.0, "subject": "MasterInstance", "kind": "AWS::EC2::Instance",
                          "status": "CREATE_FAILED", "detail": "The key pair 'k' does not exist"}


def test_rich_table_keeps_latest_status_per_resource() -> None:
    out = Tty()
    run(Look.RICH, out)
    text = out.getvalue()
    final = text[text.rfind("create-stack c"):]  # the last frame of the live table
    assert "CREATE_FAILED" in final and "CREATE_IN_PROGRESS" not in final
    assert "rolling back" in text and "\x1b[" in text  # styled for a terminal
