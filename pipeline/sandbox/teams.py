"""Who the sample accounts belong to: each seed is its own team, with its own token.

Each seed has its own team uuid and name, invoice uuids, resource uuids and ids, so several
accounts can share one warehouse without a key in common. Seed 7 is the default account,
"Example Co", behind `sandbox-token`.
"""

from __future__ import annotations

import uuid

# Every uuid the generators derive (teams, invoices, resources) lives under this namespace.
NAMESPACE = uuid.UUID("6f1c2d4e-8a7b-4c3d-9e0f-112233445566")

# Team names by seed, from seed 7 (the default account) on; later rounds get a number.
TEAM_NAMES = [
    "Example Co",
    "Équipe Données",
    "Northwind Analytics",
    "Blue Harbor Labs",
    "Kōbe Robotics 株式会社",
    "Sørensen & Dahl",
    "Acme Research",
    "Nova Logistics",
]
FIRST_TEAM_SEED = 7

# The account behind the token (`GET /v2/account`), less its team, which lives in `SandboxData`.
ACCOUNT_USER = {
    "droplet_limit": 25,
    "floating_ip_limit": 5,
    "email": "billing@example.com",
    "name": "Sammy Shark",
    "uuid": "b6f289dbf6d9156cace5f3c78dc9851d957381ef",
    "email_verified": True,
    "status": "active",
    "status_message": "",
}


def team_of(seed: int) -> dict[str, str]:
    """The seed's team: a uuid of its own and a name no other seed has."""
    index = seed - FIRST_TEAM_SEED
    name = TEAM_NAMES[index % len(TEAM_NAMES)]
    if not 0 <= index < len(TEAM_NAMES):
        name = f"{name} {seed}"
    return {"uuid": str(uuid.uuid5(NAMESPACE, f"{seed}:team")), "name": name}


def team_token(n: int) -> str:
    """The n-th sample team's token (from 1): `sandbox-token`, `sandbox-token-2`, …"""
    return "sandbox-token" if n == 1 else f"sandbox-token-{n}"
