"""The token never leaks: not to logs, run records, errors, the warehouse or raw payloads."""

import secrets
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from pipeline.defs.definitions import source_defs
from pipeline.defs.resources import DigitalOceanResource, WarehouseResource
from pipeline.sandbox import SandboxServer
from pipeline.sources import INVOICES


def warehouse_mentions(path: Path, needle: str) -> int:
    """Rows in any text column of any table (raw included) that contain `needle`."""
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR' AND table_schema IN ('main', 'raw')"
        ).fetchall()
        return sum(
            con.execute(
                f'SELECT count(*) FROM "{schema}"."{table}" WHERE contains("{column}", ?)',  # noqa: S608
                [needle],
            ).fetchone()[0]
            for schema, table, column in columns
        )


def files_mentioning(root: Path, needle: str) -> list[Path]:
    raw = needle.encode()
    return [p for p in root.rglob("*") if p.is_file() and raw in p.read_bytes()]


@pytest.mark.parametrize("valid", [True, False], ids=["success", "rejected-token"])
def test_token_appears_nowhere(tmp_path, monkeypatch, capfd, valid, failure_message):
    token = "dop_v1_" + secrets.token_hex(32)
    monkeypatch.setenv("DIGITALOCEAN_TOKEN", token)
    warehouse = tmp_path / "warehouse.duckdb"
    home = tmp_path / "dagster_home"
    home.mkdir()
    server_token = token if valid else "another-token"
    with SandboxServer(token=server_token) as server:
        monkeypatch.setenv("DIGITALOCEAN_API_URL", server.url)
        with dg.DagsterInstance.local_temp(
            str(home), overrides={"telemetry": {"enabled": False}}
        ) as instance:
            result = dg.materialize(
                source_defs(INVOICES),
                resources={
                    "digitalocean": DigitalOceanResource(
                        token=dg.EnvVar("DIGITALOCEAN_TOKEN"),
                        api_url=dg.EnvVar("DIGITALOCEAN_API_URL"),
                    ),
                    "warehouse": WarehouseResource(path=str(warehouse)),
                },
                partition_key="2024-03",
                instance=instance,
                raise_on_error=False,
            )
            run = instance.get_run_by_id(result.run_id)
            records = instance.all_logs(result.run_id)
        # The sandbox did receive it: the token was really in play.
        assert any(r["authorized"] for r in server.requests) == valid
    assert result.success == valid
    out, err = capfd.readouterr()
    assert token not in out + err
    assert token not in str(run.run_config) and token not in str(run.tags)
    assert all(token not in str(record) for record in records)
    assert token not in failure_message(result)
    assert files_mentioning(home, token) == []
    if valid:
        assert warehouse_mentions(warehouse, token) == 0
        assert files_mentioning(tmp_path, token) == []
    else:
        assert "DIGITALOCEAN_TOKEN" in failure_message(result)
        assert len(server.requests) == 1, "a rejected token must fail fast, without retries"
