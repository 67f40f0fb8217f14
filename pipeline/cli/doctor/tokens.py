"""The API tokens and their scopes: each token against the configured API (or, without one, the
built-in sandbox), with the pipeline's own client, as a run calls it."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

from pipeline.api import ApiError, AuthError, DigitalOceanClient, RetryPolicy
from pipeline.cli.doctor.check import TIMEOUT_SECONDS, Check
from pipeline.cli.doctor.configuration import host_of
from pipeline.sandbox import SandboxServer
from pipeline.settings import TOKEN_ENV, Settings, token_place
from pipeline.sources import INVENTORY
from pipeline.teams import Account, TeamMissingError, read_team

BALANCE_PATH = "/v2/customers/my/balance"
TOKENS_PAGE = "https://cloud.digitalocean.com/account/api/tokens"


class _Quiet:
    """A log for the client that drops its retry warnings: the check's own line says it all."""

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass


class ApiChecks(NamedTuple):
    """One token's lines, and its team's uuid when the account was read (to spot two tokens
    of one team)."""

    checks: list[Check]
    team: str | None


def _client(url: str, token: str, place: str) -> DigitalOceanClient:
    """The pipeline's client, with one retry and a short timeout: a person is waiting."""
    return DigitalOceanClient(
        url,
        token,
        retry=RetryPolicy(attempts=2),
        timeout=TIMEOUT_SECONDS,
        log=_Quiet(),
        token_name=place,
    )


def _api_failure(exc: ApiError, scope: str, host: str, place: str = TOKEN_ENV) -> str:
    """What an API error means for the person running the check, and what to do about it."""
    if isinstance(exc, AuthError) and exc.status == 401:
        return (
            "the token is not valid or was revoked (HTTP 401): create a new token with the "
            f"billing:read and account:read scopes at {TOKENS_PAGE} and set {place} to it"
        )
    if isinstance(exc, AuthError):
        return (
            f"the token lacks {scope} (HTTP {exc.status}): create a token that has it at "
            f"{TOKENS_PAGE} and set {place} to it"
        )
    if exc.status is not None:  # a 404 or another answer the API does not give
        return f"{host} answered {exc}: check that DIGITALOCEAN_API_URL points at the API"
    return f"cannot reach {host}: {exc}. Check DIGITALOCEAN_API_URL and the network"


def _billing(client: DigitalOceanClient) -> tuple[Check, ApiError | None]:
    """The API answers and the token reads billing: the call every billing asset depends on."""
    try:
        client.get_page(BALANCE_PATH, None, "billing:read")
    except ApiError as exc:
        failure = _api_failure(exc, "billing:read", client.host, client.token_name)
        return Check("API, billing:read", False, failure), exc
    return Check("API, billing:read", True, f"{client.host} answered GET {BALANCE_PATH}"), None


def _account(client: DigitalOceanClient) -> tuple[Check, str | None]:
    """The token reads the account (every run names the team with it, `teams.read_team`); the
    line names the team, so a person can tell which token this is without seeing it."""
    try:
        team = read_team(Account(1, client.token_name, client))
    except TeamMissingError as exc:
        return Check("account:read", False, str(exc)), None
    except ApiError as exc:
        detail = _api_failure(exc, "account:read", client.host, client.token_name)
        if isinstance(exc, AuthError) and exc.status == 403:
            detail += "; every run reads the token's team with it"
        return Check("account:read", False, detail), None
    return Check("account:read", True, f'team "{team.name}" ({team.uuid})'), team.uuid


def _inventory(client: DigitalOceanClient) -> Check:
    """The inventory lists' scopes (`project:read`, `droplet:read`, …), one page of one record
    each, as a run reads them, in one line. A missing scope fails that list's step only, and
    allocation and the idle resources lack its resources."""
    lacking, failures = [], []
    for source in INVENTORY:
        endpoint = source.index
        assert endpoint is not None
        try:
            client.get_page(endpoint.path, endpoint.paginator.params(1, 1), endpoint.scope)
        except AuthError as exc:
            if exc.status != 403:
                failures.append(_api_failure(exc, endpoint.scope, client.host, client.token_name))
            else:
                lacking.append(source)
        except ApiError as exc:
            failures.append(_api_failure(exc, endpoint.scope, client.host, client.token_name))
    name = "inventory scopes"
    if failures:
        return Check(name, False, failures[0])
    if lacking:
        scopes = ", ".join(s.index.scope for s in lacking if s.index is not None)
        steps = ", ".join(s.name for s in lacking)
        return Check(
            name,
            False,
            f"the token lacks {scopes} (HTTP 403): the {steps} step(s) fail, and allocation "
            f"and the idle resources lack them; create a token that has them at {TOKENS_PAGE} "
            f"and set {client.token_name} to it",
        )
    scopes = ", ".join(s.index.scope for s in INVENTORY if s.index is not None)
    return Check(name, True, f"reads every inventory list ({scopes})")


def check_api(url: str, token: str, place: str = TOKEN_ENV) -> ApiChecks:
    """Billing, then the account, then each inventory list's scope. The rest is only asked when
    the first call got through or was refused for its scope alone, else each line would repeat
    the same problem."""
    with _client(url, token, place) as client:
        billing, error = _billing(client)
        if error is not None and not (isinstance(error, AuthError) and error.status == 403):
            skipped = Check("account:read", None, "not checked: see the line above")
            return ApiChecks([billing, skipped], None)
        account, team = _account(client)
        return ApiChecks([billing, account, _inventory(client)], team)


def _check_tokens(settings: Settings) -> list[Check]:
    """Each token in turn, its lines named by its place when there are several; two tokens of
    one team are a problem of their own."""
    tokens = settings.tokens
    checks: list[Check] = []
    teams: dict[str, str] = {}
    for position, token in enumerate(tokens, start=1):
        place = token_place(position, settings.token_env)
        found, team = check_api(settings.digitalocean.api_url, token.get_secret_value(), place)
        if len(tokens) > 1:
            found = [dataclasses.replace(c, name=f"{place}: {c.name}") for c in found]
        checks += found
        if team is not None and team in teams:
            checks.append(
                Check(
                    "teams",
                    False,
                    f"{teams[team]} and {place} belong to the same team ({team}): keep one",
                )
            )
        teams.setdefault(team or f"unknown-{position}", place)
    return checks


def check_token(settings: Settings) -> list[Check]:
    """The tokens against the configured API, or, without one, the built-in sandbox for the
    length of the check, so the path `make run` takes without a token is exercised too."""
    if settings.tokens:
        return _check_tokens(settings)
    with SandboxServer() as sandbox:
        note = Check(
            "token",
            True,
            f"not set: checking the built-in sandbox API instead, started at "
            f"{host_of(sandbox.url)} for this check",
        )
        return [note, *check_api(sandbox.url, sandbox.token).checks]
