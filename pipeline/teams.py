"""Several teams, one token each: whose team each token is, and each team's work beside the others'.

DigitalOcean bills each team separately and every token belongs to one team, so a run loads every
configured team: each with its own client (its own pacer: limits are per token), side by side.
One team's failure does not touch the others' rows; the run fails at the end naming the team —
by the name `GET /v2/account` gave, or, for a token that can no longer read its own team, by the
token's place in the settings (`token 2 of DIGITALOCEAN_TOKENS`), with the team last seen there.
No message ever holds a token.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from pipeline.api import ApiError, DigitalOceanClient
from pipeline.api.log import Log

# Teams work a bounded number at a time: each is one thread with its own client pool, so
# hundreds of teams must not mean hundreds of threads (TEAM_WORKERS).
from pipeline.settings import DEFAULT_TEAM_WORKERS
from pipeline.sources.fields import InvalidPayloadError
from pipeline.warehouse.store import Warehouse
from pipeline.warehouse.swap import EmptiedMonthError

ACCOUNT_PATH = "/v2/account"
T = TypeVar("T")
Failure = tuple[str, BaseException]  # how the team is named, what went wrong


@dataclass(frozen=True)
class Account:
    """A configured token, not yet identified: its place in the list and its client."""

    position: int  # 1-based place in DIGITALOCEAN_TOKENS (1 for DIGITALOCEAN_TOKEN)
    place: str  # how messages name the token: `token 2 of DIGITALOCEAN_TOKENS`
    client: DigitalOceanClient


@dataclass(frozen=True)
class Team:
    """A team as the API names it; `place` says which token reads it."""

    uuid: str
    name: str
    position: int
    place: str

    def __str__(self) -> str:
        return f"team {self.name!r} ({self.uuid})"


class TeamMissingError(ApiError):
    """`GET /v2/account` answered, but without the team's uuid."""


class TeamError(RuntimeError):
    """A team's token could not be read or used; the message names the team, never the token."""


class DuplicateTeamError(TeamError):
    """Two tokens of the same team: the team would be loaded twice."""


class TeamsBeforeTeamsError(TeamError):
    """The warehouse holds rows loaded before teams were recorded, and several tokens are set."""


class RefusedEarlierError(ApiError):
    """A token the API refused (or did not answer) earlier in this run: the step fails with
    the same cause, without asking again, and without logging it again."""

    quiet = True


class TeamsFailedError(RuntimeError):
    """Some teams failed; the others' months are committed. Names each failed team."""


# Errors whose message says what went wrong and where, with no need of a traceback.
WORDED_ERRORS = (ApiError, TeamError, InvalidPayloadError, EmptiedMonthError)


@dataclass(frozen=True)
class Outcome(Generic[T]):
    """What each team's work returned, and each failed team with why."""

    results: dict[Team, T]
    failures: list[Failure]

    def raise_failures(self) -> None:
        """Fail naming every failed team. The first error is chained, for its traceback, unless
        it is one the project words itself (the API's answer, a team's token, a bad value):
        its message, already in this one, says all, and each failed step would otherwise print
        the same fifty lines of traceback again."""
        if not self.failures:
            return
        done = len(self.results)
        lines = "; ".join(f"{who}: {str(error).rstrip('.')}" for who, error in self.failures)
        first = self.failures[0][1]
        kept = "the failed teams keep their previous rows."
        error = TeamsFailedError(
            f"{len(self.failures)} of {done + len(self.failures)} team(s) failed — {lines}. "
            + (f"The other teams’ months are committed; {kept}" if done else kept.capitalize())
        )
        if isinstance(first, WORDED_ERRORS):
            raise error from None
        raise error from first


def read_team(account: Account) -> Team:
    """`GET /v2/account`: the token's team (uuid, name). The one place this answer is read: the
    steps name teams with it, Billing Insights asks for the team's URN, `make doctor` shows it."""
    page = account.client.get_page(ACCOUNT_PATH, scope="account:read")
    found = page.data.get("account") if isinstance(page.data, dict) else None
    team = found.get("team") if isinstance(found, dict) else None
    uuid = team.get("uuid") if isinstance(team, dict) else None
    if not isinstance(uuid, str) or not uuid.strip():
        raise TeamMissingError(
            f"GET {ACCOUNT_PATH} answered without account.team.uuid, which names the team",
            path=ACCOUNT_PATH,
        )
    name = team.get("name") or uuid
    return Team(uuid=uuid, name=str(name), position=account.position, place=account.place)


def unreadable_team(account: Account, store: Warehouse) -> str:
    """How to name a team whose token cannot read it: by the token's place in the settings,
    which is what the user edits, then the team last seen there, if ever (the warehouse holds
    only teams of its own kind, sample or real, so that is never another kind's team)."""
    seen = store.teams.last_seen_at(account.position)
    if seen is None:
        return f"{account.place} (its team not seen before)"
    uuid, name = seen
    return f"{account.place} (last seen reading team {name!r} ({uuid}))"


def side_by_side(
    items: Sequence[T], work: Callable[[T], object], workers: int = DEFAULT_TEAM_WORKERS
) -> list[BaseException | None]:
    """Run `work` on every item, at most `workers` at once; each item's exception, or None."""
    if not items:
        return []
    size = max(1, min(workers, len(items)))
    with ThreadPoolExecutor(max_workers=size, thread_name_prefix="team") as pool:
        futures = [pool.submit(work, item) for item in items]
        return [future.exception() for future in futures]


def identify(
    accounts: Sequence[Account],
    store: Warehouse,
    tables: Sequence[str],
    log: Log,
    known: dict[int, Team | ApiError] | None = None,
    workers: int = DEFAULT_TEAM_WORKERS,
) -> tuple[list[tuple[Team, Account]], list[Failure]]:
    """Every token's team, read side by side; tokens that cannot read theirs are failures named
    as last seen. `known` holds what this run already read, by place in the token list (the API
    resource keeps it): the team, or the API's refusal (a 401, a 403, no answer after every
    retry), so later steps of a run neither ask again nor wait through the retries again. Teams
    are recorded in the warehouse, and rows loaded before teams existed are made the only
    team's (never guessed between several)."""
    teams: list[Team | None] = [None] * len(accounts)
    known = {} if known is None else known

    def read(index: int) -> None:
        account = accounts[index]
        found = known.get(account.position)
        if isinstance(found, ApiError):
            raise RefusedEarlierError(str(found), path=found.path, status=found.status)
        if found is None:
            try:
                found = read_team(account)
            except ApiError as exc:
                known[account.position] = exc
                raise
            known[account.position] = found
        teams[index] = found

    errors = side_by_side(list(range(len(accounts))), read, workers)
    found: list[tuple[Team, Account]] = []
    failures: list[Failure] = []
    with store.session():  # the reads above held no file; the bookkeeping opens it once
        for account, team, error in zip(accounts, teams, errors, strict=True):
            if error is not None:
                failures.append((unreadable_team(account, store), error))
            elif team is not None:
                found.append((team, account))
        _refuse_duplicates([team for team, _ in found])
        store.teams.see([(team.uuid, team.name, team.position) for team, _ in found])
        _claim_rows_before_teams(accounts, found, store, tables, log)
    return found, failures


def _refuse_duplicates(teams: Sequence[Team]) -> None:
    by_uuid: dict[str, Team] = {}
    for team in teams:
        first = by_uuid.setdefault(team.uuid, team)
        if first is not team:
            raise DuplicateTeamError(
                f"{first.place} and {team.place} both belong to {team}: each team needs exactly "
                "one token. Remove one of them from DIGITALOCEAN_TOKENS."
            )


def _claim_rows_before_teams(
    accounts: Sequence[Account],
    found: Sequence[tuple[Team, Account]],
    store: Warehouse,
    tables: Sequence[str],
    log: Log,
) -> None:
    waiting = store.teams.rows_before(tables)
    if not waiting:
        return
    if len(accounts) != 1 or len(found) != 1:
        raise TeamsBeforeTeamsError(
            f"the warehouse holds {waiting} row(s) loaded before teams were recorded, and "
            f"{len(accounts)} tokens are set: run once with only the token that loaded them "
            "(DIGITALOCEAN_TOKEN), so they become its team's. Nothing was loaded."
        )
    team = found[0][0]
    changed = store.teams.claim_rows_before(tables, team.uuid)
    log.info(f"{changed} row(s) loaded before teams were recorded are now {team}'s")


def for_each_team(
    teams: Sequence[tuple[Team, Account]],
    work: Callable[[Team, DigitalOceanClient], T],
    failures: Sequence[Failure] = (),
    workers: int = DEFAULT_TEAM_WORKERS,
    on_done: Callable[[bool], None] | None = None,
) -> Outcome[T]:
    """`work(team, client)` for every team, `workers` at a time; what each returned or why it
    failed. `on_done(ok)` is told as each team finishes (progress lines)."""
    results: dict[Team, T] = {}

    def one(pair: tuple[Team, Account]) -> None:
        team, account = pair
        try:
            results[team] = work(team, account.client)
        except BaseException:
            if on_done is not None:
                on_done(False)
            raise
        if on_done is not None:
            on_done(True)

    errors = side_by_side(list(teams), one, workers)
    failed = list(failures) + [
        (f"{team} ({account.place})", error)
        for (team, account), error in zip(teams, errors, strict=True)
        if error is not None
    ]
    ordered = {team: results[team] for team, _ in teams if team in results}
    return Outcome(ordered, failed)
