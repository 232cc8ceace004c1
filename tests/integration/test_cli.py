"""The command line as an operator uses it: real processes, real control plane, real files."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from bot.clock import SYSTEM_CLOCK
from bot.playground.child import free_port
from bot.playground.control_plane import ControlPlane
from bot.playground.jira_emulator import PAT, JiraEmulator
from bot.playground.slack_emulator import SlackEmulator
from bot.store.audit_trail import AuditTrail
from bot.store.database import open_database
from tests.emulators.fixtures import BOT_TOKEN, SIGNING_SECRET

ROOT = Path(__file__).parent.parent.parent


def write_config(
    tmp_path: Path, plane: ControlPlane | None, *, port: int = 3000, **extra: Any
) -> Path:
    environments = [
        {"name": "dev", "kubeconfig": str(plane.kubeconfig) if plane else "/nonexistent"}
    ]
    document = {
        "server": {"host": "127.0.0.1", "port": port, "shutdown_timeout_s": 5},
        "store": {"url": f"sqlite:///{tmp_path}/state.db"},
        "slack": {"mode": "http"},
        "environments": environments,
        **extra,
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(document))
    return path


def env_for(emulator: SlackEmulator | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "POLICY_BOT_", "KUBECONFIG"))
    }
    env.update(SLACK_BOT_TOKEN=BOT_TOKEN, SLACK_SIGNING_SECRET=SIGNING_SECRET)
    if emulator is not None:
        env["SLACK_API_URL"] = emulator.base_url
    return env


async def run_cli(*args: str, env: dict[str, str], timeout: float = 60) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    return process.returncode or 0, out.decode(), err.decode()


async def test_bad_config_names_the_key_path_and_exits_2(tmp_path: Path) -> None:
    config = write_config(tmp_path, None, port=99999, slack={"mode": "http", "chanels": {}})
    code, _, err = await run_cli("check-config", "--config", str(config), env=env_for(None))
    assert code == 2
    assert "server.port: Input should be less than or equal to 65535" in err
    assert "slack.chanels: unknown key" in err
    config = write_config(
        tmp_path, None, promotion={"stages": [{"environment": "nowhere", "mode": "Audit"}]}
    )
    code, _, err = await run_cli("check-config", "--config", str(config), env=env_for(None))
    assert code == 2 and "promotion.stages" in err and "nowhere" in err
    env = env_for(None)
    del env["SLACK_SIGNING_SECRET"]
    config = write_config(tmp_path, None)
    code, _, err = await run_cli("--config", str(config), env=env)
    assert code == 2 and "SLACK_SIGNING_SECRET must be set when slack.mode is http" in err
    code, _, err = await run_cli("check-config", env=env_for(None))
    assert code == 2 and "POLICY_BOT_CONFIG" in err


@pytest.mark.kube
async def test_check_config_reaches_every_dependency(
    tmp_path: Path, control_plane: ControlPlane, slack_emulator: SlackEmulator
) -> None:
    async with JiraEmulator(mode="server", projects=("SEC",)) as jira:
        config = write_config(tmp_path, control_plane, jira={"url": jira.url, "project": "SEC"})
        env = {**env_for(slack_emulator), "JIRA_TOKEN": PAT}
        code, out, err = await run_cli("check-config", "--config", str(config), env=env)
        assert code == 0, out + err
        assert out.splitlines() == [
            "config: ok",
            "store: ok",
            "slack: ok",
            "environment dev: ok",
            "jira: ok",
        ]
        env["JIRA_TOKEN"] = "wrong-token"
        code, out, _ = await run_cli("check-config", "--config", str(config), env=env)
        assert code == 1 and "jira: " in out and "jira: ok" not in out
    dead = write_config(tmp_path, None, alertmanager={"url": f"http://127.0.0.1:{free_port()}"})
    code, out, _ = await run_cli("check-config", "--config", str(dead), env=env_for(slack_emulator))
    assert code == 1
    assert "environment dev: Environment *dev* is unreachable (cannot load its kubeconfig" in out
    assert "alertmanager: cannot reach" in out


async def test_check_config_names_every_channel_the_bot_cannot_post_in(
    tmp_path: Path, slack_emulator: SlackEmulator
) -> None:
    slack_emulator.add_channel("C0ALERTS", "policy-alerts")
    slack_emulator.add_channel("C0SECRET", "security-approvals", is_private=True, is_member=False)
    slack_emulator.add_channel("C0REPORTS", "policy-reports", is_member=False)
    slack_emulator.add_channel("C0OLDTEAM", "team-old", is_archived=True)
    slack_emulator.auto_channel_prefixes = ()  # only the channels above exist
    config = write_config(
        tmp_path,
        None,
        slack={
            "mode": "http",
            "channels": {"alerts": "C0ALERTS", "approvals": "C0SECRET", "reports": "C0REPORTS"},
        },
        alertmanager={
            "routes": [
                {"match": {"team": "old"}, "channel": "C0OLDTEAM"},
                {"match": {"team": "x"}, "channels": ["C0ALERTS", "C0NOWHERE"]},
            ]
        },
    )
    code, out, _ = await run_cli(
        "check-config", "--config", str(config), env=env_for(slack_emulator)
    )
    assert code == 1  # the channels, and the environment whose kubeconfig does not exist
    lines = out.splitlines()
    assert "channel C0ALERTS (alerts, alert route 2): ok" in lines
    assert (
        "channel C0SECRET (approvals): Slack does not show this channel to the bot: a wrong "
        "id, or a private channel the bot was not invited to (run `/invite @policy-bot` there)"
    ) in lines
    assert (
        "channel C0REPORTS (reports): the bot is not a member of #policy-reports: run "
        "`/invite @policy-bot` there (a public channel takes its posts through "
        "chat:write.public, but the bot cannot read it back to find a post whose answer "
        "Slack lost)"
    ) in lines
    assert (
        "channel C0OLDTEAM (alert route 1): #team-old is archived: nothing can be posted there"
    ) in lines
    assert any(
        line.startswith("channel C0NOWHERE (alert route 2): Slack does not") for line in lines
    )


@pytest.mark.kube
async def test_the_bot_process_serves_and_shuts_down_cleanly(
    tmp_path: Path, control_plane: ControlPlane, slack_emulator: SlackEmulator
) -> None:
    port = free_port()
    config = write_config(tmp_path, control_plane, port=port)
    env = {**env_for(slack_emulator), "POLICY_BOT_CONFIG": str(config)}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
            while True:
                try:
                    async with session.get(base + "/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                assert time.monotonic() < deadline, "the bot did not start within 30 s"
                await asyncio.sleep(0.1)
            async with session.get(base + "/readyz") as r:
                assert r.status == 200
                ready = await r.json()
                cache = ready.pop("status_cache")  # how far its first list and watch got
                assert ready == {"ready": True, "store": "ok", "clusters": {"dev": "ok"}}
                assert cache["dev"] in ("syncing", "reconnecting", "watching"), cache
            async with session.get(base + "/metrics") as r:
                assert "policy_bot_http_requests_total" in await r.text()
            async with session.post(base + "/slack/events", data="command=/policy") as r:
                assert r.status == 401  # unsigned
        process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(process.wait(), 15)
        assert code == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_audit_verify_detects_a_tampered_row(tmp_path: Path) -> None:
    config = write_config(tmp_path, None)
    db = await open_database(f"sqlite:///{tmp_path}/state.db")
    try:
        await db.migrate(clock=SYSTEM_CLOCK)
        trail = AuditTrail(db, clock=SYSTEM_CLOCK)
        for i in range(20):
            await trail.append(
                actor="U0SAM", action="command.status", outcome="ok", details={"i": i}
            )
    finally:
        await db.close()
    code, out, _ = await run_cli("audit", "verify", "--config", str(config), env=env_for(None))
    assert code == 0 and "audit trail intact: 20 entries" in out

    with sqlite3.connect(tmp_path / "state.db") as conn:
        conn.execute("DROP TRIGGER audit_entries_no_update")
        conn.execute("UPDATE audit_entries SET actor = 'U0MALLORY' WHERE id = 7")
    code, _, err = await run_cli("audit", "verify", "--config", str(config), env=env_for(None))
    assert code == 1
    assert "audit trail BROKEN: entry 7: hash does not match its content" in err
