"""The team registry: which teams the warehouse has seen, by name and token position.

A run records each team as `GET /v2/account` named it and where its token sat in the list, so
a later run can name a team whose token no longer reads (`last_seen_at`), and rows loaded before
teams were recorded can be given to the one team there is. `Warehouse.teams` is the registry of
the warehouse's file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pandas as pd

from pipeline.warehouse.frames import identifier

if TYPE_CHECKING:
    from pipeline.warehouse.connection import WarehouseFile

SEE_TEAMS = """
    MERGE INTO teams AS t
    USING (SELECT team_uuid, team_name, token_position, $now AS seen_at FROM seen) AS s
    ON t.team_uuid = s.team_uuid
    WHEN MATCHED THEN UPDATE SET team_name = s.team_name, token_position = s.token_position,
                                 last_seen_at = s.seen_at
    WHEN NOT MATCHED THEN INSERT (team_uuid, team_name, token_position, first_seen_at,
                                  last_seen_at)
        VALUES (s.team_uuid, s.team_name, s.token_position, s.seen_at, s.seen_at)
"""
LAST_SEEN_AT = """
    SELECT team_uuid, team_name FROM teams
    WHERE token_position = $position ORDER BY last_seen_at DESC LIMIT 1
"""
# Rows loaded before teams were recorded have no team; raw's fetches are counted with them.
BEFORE_TEAMS = "raw.fetches"


class TeamRegistry:
    """The `teams` table of one warehouse file, and the rows that predate it."""

    def __init__(self, store: WarehouseFile) -> None:
        self._store = store

    def see_one(self, team_uuid: str, name: str, position: int) -> None:
        """Record a team as `GET /v2/account` named it, and where its token sits in the list."""
        self.see([(team_uuid, name, position)])

    def see(self, teams: Sequence[tuple[str, str, int]]) -> None:
        """Record teams (uuid, name, token position) in one transaction: a run of a thousand
        teams records them in one write, not a thousand."""
        if not teams:
            return
        seen = pd.DataFrame(list(teams), columns=["team_uuid", "team_name", "token_position"])
        with self._store.transaction() as con:
            con.register("seen", seen)
            con.execute(SEE_TEAMS, {"now": pd.Timestamp.now(tz="UTC")})
            con.unregister("seen")

    def names(self, uuids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """uuid → (name, token position) as last seen, for the given teams that are recorded."""
        with self._store.connect() as con:
            rows = con.execute(
                "SELECT team_uuid, team_name, token_position FROM teams "
                "WHERE list_contains(CAST($uuids AS VARCHAR[]), team_uuid)",
                {"uuids": list(uuids)},
            ).fetchall()
        return {uuid: (name, position) for uuid, name, position in rows}

    def last_seen_at(self, position: int) -> tuple[str, str] | None:
        """(uuid, name) of the team whose token last sat at this place in the list, if any."""
        if not self._store.path.exists():
            return None
        with self._store.connect() as con:
            return con.execute(LAST_SEEN_AT, {"position": position}).fetchone()

    def rows_before(self, tables: Sequence[str]) -> int:
        """Rows loaded before teams were recorded (team_uuid NULL), in these tables and raw."""
        with self._store.connect() as con:
            return sum(
                con.execute(
                    f"SELECT count(*) FROM {identifier(t)} WHERE team_uuid IS NULL"  # noqa: S608
                ).fetchone()[0]
                for t in [*tables, BEFORE_TEAMS]
            )

    def claim_rows_before(self, tables: Sequence[str], team_uuid: str) -> int:
        """Make every row loaded before teams this team's, in one transaction; rows changed."""
        changed = 0
        with self._store.transaction() as con:
            for table in [*tables, BEFORE_TEAMS]:
                changed += con.execute(
                    f"UPDATE {identifier(table)} SET team_uuid = $team "  # noqa: S608
                    "WHERE team_uuid IS NULL",
                    {"team": team_uuid},
                ).fetchone()[0]
        return changed
