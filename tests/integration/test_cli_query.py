"""`denomas-usage query`: read-only unless --write (the warehouse refuses the write, whatever the SQL says), the
warehouse's reason on stderr with exit 1, and the result as a table on stdout."""

from __future__ import annotations

from streams.cli import main


def _query(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["query", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_query_is_read_only_unless_write(capsys):
    assert main(["migrate"]) == 0
    assert _query(capsys, "--write", "CREATE TABLE cli_probe (x UInt8) ENGINE = MergeTree ORDER BY x")[0] == 0
    code, out, err = _query(capsys, "INSERT INTO cli_probe VALUES (1)")
    assert code == 1 and out == ""
    assert "query: " in err and "readonly" in err.lower() and "Traceback" not in err
    code, out, _ = _query(capsys, "SELECT count() AS n FROM cli_probe")
    assert code == 0 and out.splitlines()[-2].strip() == "0"  # the refused insert wrote nothing
    assert _query(capsys, "--write", "INSERT INTO cli_probe VALUES (1), (2)")[0] == 0
    code, out, _ = _query(capsys, "SELECT x FROM cli_probe ORDER BY x")
    assert code == 0
    assert [line.strip() for line in out.splitlines()] == ["x", "-" * len(out.splitlines()[1].strip()), "1", "2",
                                                           out.splitlines()[-1].strip()]
    assert out.splitlines()[-1].startswith("(2 rows")


def test_a_bad_statement_gets_the_warehouse_reason_and_exit_1(capsys):
    code, out, err = _query(capsys, "SELEC 1")
    assert code == 1 and out == "" and "Syntax error" in err
