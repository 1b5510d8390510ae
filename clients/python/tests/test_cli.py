"""``mcp-py call``: the reply as one JSON line, and ``mcp-engine send``'s
exit codes (0 Response, 1 Error, 2 no reply or bad flags)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import Server

from mcp_engine_client.cli import main


def credentials_file(server: Server, tmp_path: Path) -> str:
    data = json.loads((server.folder / "credentials.json").read_text(encoding="utf-8"))
    data["addr"] = server.credentials.addr
    path = tmp_path / "credentials.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return str(path)


def test_a_response_prints_its_envelope_and_exits_0(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    creds = credentials_file(server, tmp_path)
    code = main(["call", "demo.echo", '{"hi":1}', "--credentials", creds, "--level", "Critical"])
    assert code == 0
    reply = json.loads(capsys.readouterr().out)
    assert reply["type"] == "Response"
    assert reply["payload"] == {"result": {"hi": 1}}
    assert reply["security"]["security_level"] == "Critical"


def test_an_error_exits_1_and_no_reply_exits_2(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    creds = credentials_file(server, tmp_path)
    assert main(["call", "no.such", "--credentials", creds]) == 1
    assert json.loads(capsys.readouterr().out)["payload"]["code"] == "handler_not_found"
    assert main(["call", "sys.ping", "--addr", "127.0.0.1:1", "--token", "t"]) == 2
    assert "cannot connect" in capsys.readouterr().err
    assert main(["call", "demo.echo", "{not json", "--credentials", creds]) == 2
    with pytest.raises(SystemExit) as bad_flag:
        main(["call", "demo.echo", "--level", "Extreme"])
    assert bad_flag.value.code == 2
