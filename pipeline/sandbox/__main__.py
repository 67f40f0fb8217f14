"""`python -m pipeline.sandbox`: run the sandbox API in the foreground.

`--teams N` serves N sample teams, one token each: `--token` (with `--scopes`) for the first,
`sandbox-token-2`, `sandbox-token-3`, … for the others; every token is printed with its team.
`--revoke P` (repeatable): the P-th team's token answers 401 on every path but `/v2/account`, as
a token revoked after its team was read.
"""

import argparse
import time

from pipeline.sandbox import SandboxServer, build_teams
from pipeline.sandbox.profiles import PROFILES
from pipeline.sandbox.server import DEFAULT_SCOPES


def main() -> None:
    parser = argparse.ArgumentParser(description="Serve the sandbox DigitalOcean billing API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--profile", default="default", choices=list(PROFILES))
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per request")
    parser.add_argument("--token", default="sandbox-token")
    parser.add_argument("--requests-per-minute", type=int, default=None)
    parser.add_argument(
        "--scopes",
        default=",".join(sorted(DEFAULT_SCOPES)),
        help="comma-separated scopes the token has (default: %(default)s); "
        "a request needing another answers 403",
    )
    parser.add_argument(
        "--teams",
        type=int,
        default=1,
        help="how many teams to serve, one token each (default: %(default)s)",
    )
    parser.add_argument(
        "--revoke",
        type=int,
        action="append",
        default=[],
        metavar="P",
        help="the P-th team's token answers 401 on everything but /v2/account (repeatable)",
    )
    args = parser.parse_args()
    if args.teams < 1:
        parser.error("--teams must be at least 1")
    if any(not 1 <= place <= args.teams for place in args.revoke):
        parser.error(f"--revoke takes a team's place, 1 to {args.teams}")
    scopes = frozenset(s.strip() for s in args.scopes.split(",") if s.strip())
    teams = build_teams(args.teams, args.profile)
    (_, first), *others = teams.items()
    if args.token in dict(others):
        parser.error(f"--token {args.token!r} is another team's token; choose another")
    server = SandboxServer(
        first,
        token=args.token,
        teams=dict(others),
        host=args.host,
        port=args.port,
        latency=args.latency,
        requests_per_minute=args.requests_per_minute,
        scopes=scopes,
    )
    for place in args.revoke:  # far more requests than a run of every source makes
        server.inject(r"^/v2/(?!account$)", "401", times=10_000, token=server.tokens[place - 1])
    with server:
        print(
            f"sandbox DigitalOcean billing API at {server.url} (token {args.token!r}, "
            f"scopes {','.join(sorted(scopes)) or 'none'})",
            flush=True,
        )
        for token in server.tokens:
            team = server.data_for(token).team
            print(f"  token {token!r}: team {team['name']!r} ({team['uuid']})", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
