"""Bootstrap a fresh stack: a platform-admin key, or a project with its first admin key; and
reseal the stored webhook secrets with the first sealing key (the step that ends a rotation).

    python -m darkroom.ingest.admin platform-key [--label L]
    python -m darkroom.ingest.admin project NAME --policy capture|library [--recipient EMAIL]...
    python -m darkroom.ingest.admin reseal

Each prints JSON; a key's secret is shown this once.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import uuid
from typing import Any

from darkroom.common.db import Database
from darkroom.common.events import Classification
from darkroom.common.sealing import Sealer
from darkroom.common.settings import IngestSettings
from darkroom.ingest import store
from darkroom.ingest.keys import Role, digest, new_secret
from darkroom.ingest.policy import POLICIES


async def platform_key(db: Database, label: str) -> dict[str, Any]:
    secret, key_id = new_secret(), uuid.uuid4()
    async with db.transaction() as tx:
        await store.create_key(
            tx,
            key_id=key_id,
            secret_sha256=digest(secret),
            role=Role.admin,
            platform_admin=True,
            projects=[],
            label=label,
        )
    return {"key_id": str(key_id), "key": secret, "platform_admin": True}


async def project(
    db: Database, name: str, policy_name: str, recipients: list[str], timezone: str
) -> dict[str, Any]:
    policy = POLICIES[policy_name]
    project_id, key_id, secret = uuid.uuid4(), uuid.uuid4(), new_secret()
    async with db.transaction() as tx:
        await store.create_project(
            tx,
            project_id,
            name=name,
            policy=policy.name,
            ceiling=Classification.UNCLASSIFIED.value,
            timezone=timezone,
            max_files=policy.max_files,
            max_bytes=policy.max_bytes,
            max_image_bytes=policy.max_image_bytes,
        )
        await store.replace_recipients(tx, project_id, recipients, [])
        await store.create_key(
            tx,
            key_id=key_id,
            secret_sha256=digest(secret),
            role=Role.admin,
            platform_admin=False,
            projects=[project_id],
            label=f"first admin of {name}",
        )
    return {"id": str(project_id), "name": name, "policy": policy.name, "key": secret}


async def reseal(db: Database, sealer: Sealer) -> dict[str, Any]:
    """Every stored webhook secret sealed again with the first key (one from before sealing
    existed, sealed for the first time); afterwards no stored secret needs an older key."""
    async with db.transaction() as tx:
        rows = await tx.fetch(
            "SELECT id, secret FROM recipients WHERE kind = 'webhook' AND secret IS NOT NULL"
            " FOR UPDATE"
        )
        await tx.executemany(
            "UPDATE recipients SET secret = $2 WHERE id = $1",
            [(row["id"], sealer.reseal(row["secret"])) for row in rows],
        )
    return {"resealed": len(rows)}


async def main(args: argparse.Namespace) -> dict[str, Any]:
    settings = IngestSettings()
    db = Database(settings.database_url, max_size=2)
    await db.connect()
    try:
        await db.migrate(("darkroom.common", "darkroom.ingest"))
        if args.command == "platform-key":
            return await platform_key(db, args.label)
        if args.command == "reseal":
            return await reseal(db, Sealer(settings.sealing_keys))
        return await project(db, args.name, args.policy, args.recipient, args.timezone)
    finally:
        await db.close()


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="python -m darkroom.ingest.admin", description=__doc__)
    commands = root.add_subparsers(dest="command", required=True)
    key = commands.add_parser("platform-key", help="a key that may create projects and keys")
    key.add_argument("--label", default="platform admin")
    made = commands.add_parser("project", help="a project and its first admin key")
    made.add_argument("name")
    made.add_argument("--policy", choices=sorted(POLICIES), required=True)
    made.add_argument("--recipient", action="append", default=[], help="an e-mail to notify")
    made.add_argument("--timezone", default="UTC")
    commands.add_parser("reseal", help="webhook secrets sealed again with the first key")
    return root


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(parser().parse_args())), indent=2))
