"""The Slack manifests and the Dockerfile say what the code needs (no Slack or Docker here)."""

import ast
import re
from pathlib import Path

import pytest
import yaml
from slack_sdk.web.async_client import AsyncWebClient

ROOT = Path(__file__).parents[2]
# Bot scopes each Web API method needs (api.slack.com/methods).
SCOPES = {
    "auth_test": None,
    "chat_postMessage": "chat:write",
    "chat_update": "chat:write",
    "chat_postEphemeral": "chat:write",
    "chat_delete": "chat:write",
    "chat_getPermalink": None,
    "views_open": None,
    "views_update": None,
    "views_push": None,
    "views_publish": None,
    "users_info": "users:read",
    "usergroups_users_list": "usergroups:read",
    "files_upload_v2": "files:write",
    "files_getUploadURLExternal": "files:write",
    "files_completeUploadExternal": "files:write",
    "conversations_info": "channels:read",
    # Finding a post whose answer was lost: public channels (and groups:history, im:history
    # for private channels and DMs, which the manifests ask for alongside).
    "conversations_history": "channels:history",
    "conversations_replies": "channels:history",
    "conversations_open": "im:write",
}


def web_api_methods_used() -> set[str]:
    known = {name for name in dir(AsyncWebClient) if not name.startswith("_")}
    used: set[str] = set()
    for path in [*ROOT.glob("bot/**/*.py"), *ROOT.glob("handlers/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Attribute) and node.attr in known and "_" in node.attr:
                used.add(node.attr)
    return used - {"api_call", "base_url", "retry_handlers"}


def listener_sources() -> list[Path]:
    """Where listeners are declared (handlers/) and registered on Bolt (the root, bot/app/)."""
    return [*ROOT.glob("handlers/**/*.py"), *ROOT.glob("bot/app/**/*.py")]


def registered_commands() -> set[str]:
    found = set()
    for path in listener_sources():
        found |= set(re.findall(r'\.command\("(/[a-z-]+)"\)', path.read_text()))
    return found


def registered_actions() -> set[str]:
    found = set()
    for path in listener_sources():
        found |= set(re.findall(r"\.(?:action|view)\(", path.read_text()))
    return found


def registered_events() -> set[str]:
    """The `event` of every `EventListener(...)` declared, a literal or a module constant."""
    found: set[str] = set()
    for path in listener_sources():
        tree = ast.parse(path.read_text())
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name)
        }
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "EventListener"
            ):
                continue
            for keyword in node.keywords:
                if keyword.arg != "event":
                    continue
                value = keyword.value
                if isinstance(value, ast.Constant):
                    found.add(str(value.value))
                elif isinstance(value, ast.Name):
                    found.add(str(constants[value.id]))
    return found


@pytest.mark.parametrize("name", ["manifest.yml", "manifest.socket.yml"])
def test_manifest_subscribes_to_the_events_the_code_listens_to(name):
    manifest = yaml.safe_load((ROOT / name).read_text())
    events = registered_events()
    assert "app_home_opened" in events
    subscriptions = manifest["settings"]["event_subscriptions"]
    assert events <= set(subscriptions["bot_events"])
    assert manifest["features"]["app_home"]["home_tab_enabled"] is True
    if manifest["settings"]["socket_mode_enabled"]:
        assert "request_url" not in subscriptions
    else:
        assert subscriptions["request_url"].endswith("/slack/events")


@pytest.mark.parametrize("name", ["manifest.yml", "manifest.socket.yml"])
def test_manifest_lists_commands_scopes_and_interactivity(name):
    manifest = yaml.safe_load((ROOT / name).read_text())
    commands = {c["command"] for c in manifest["features"]["slash_commands"]}
    assert registered_commands() and registered_commands() <= commands
    scopes = set(manifest["oauth_config"]["scopes"]["bot"])
    assert "commands" in scopes
    for method in web_api_methods_used():
        assert method in SCOPES, f"add the scope of {method} to this test's table"
        if SCOPES[method]:
            assert SCOPES[method] in scopes, f"{method} needs {SCOPES[method]}"
    interactivity = manifest["settings"]["interactivity"]
    assert registered_actions() and interactivity["is_enabled"] is True
    socket = manifest["settings"]["socket_mode_enabled"]
    assert socket is (name == "manifest.socket.yml")
    if socket:
        assert "request_url" not in interactivity
        assert all("url" not in c for c in manifest["features"]["slash_commands"])
    else:
        assert interactivity["request_url"].endswith("/slack/events")
        assert all(
            c["url"].endswith("/slack/events") for c in manifest["features"]["slash_commands"]
        )
    assert 1 <= len(manifest["display_information"]["name"]) <= 35


def test_manifest_usage_hint_names_every_subcommand():
    manifest = yaml.safe_load((ROOT / "manifest.yml").read_text())
    hint = manifest["features"]["slash_commands"][0]["usage_hint"]
    for sub in [
        "help",
        "status",
        "exception",
        "exceptions",
        "backup",
        "restore",
        "promote",
        "demote",
        "audit",
        "doctor",
    ]:
        assert re.search(rf"\b{sub}\b", hint), sub


def test_dockerfile_runs_the_bot_as_non_root_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.split(r"^FROM ", text, flags=re.M)[1:]
    assert len(stages) >= 2, "multi-stage build"
    final = stages[-1]
    assert re.search(r'^ENTRYPOINT \["python", "-m", "bot"\]$', final, re.M)
    user = re.search(r"^USER (\S+)$", final, re.M)
    assert user and not user.group(1).startswith(("0", "root"))
    assert "HEALTHCHECK" in final and "/healthz" in final
    assert "pip wheel" not in final and "gcc" not in final, "no build tools in the final stage"
    assert re.match(r"python:3\.11-slim-\w+", final), "pinned base image"
