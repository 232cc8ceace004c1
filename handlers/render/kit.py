"""Block Kit building blocks that keep every message inside Slack's limits.

Slack validates nothing for plain dict blocks on our side and rejects oversize content
with `invalid_blocks` at send time, so every builder here truncates deliberately
(SPEC 4.2: a message that does not fit is shortened, never lost).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from bot.objects import Block as Block

MAX_BLOCKS = 50
MAX_SECTION_TEXT = 3000
MAX_HEADER_TEXT = 150
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_CONTEXT_ELEMENTS = 10
MAX_ACTIONS = 25
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_FALLBACK_TEXT = 3000
MAX_CONFIRM_TITLE = 100
MAX_CONFIRM_TEXT = 300
MAX_CONFIRM_BUTTON = 30
ELLIPSIS = "…"


def clip(text: str, limit: int) -> str:
    """`text` cut to at most `limit` characters, ending in an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + ELLIPSIS


def escape(text: str) -> str:
    """Neutralise mrkdwn control characters in text that came from users or clusters.

    Slack only needs &, < and > escaped; that is enough to stop `<!channel>` pings and
    forged links from policy messages or free text.
    """
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def header(text: str) -> Block:
    return {"type": "header", "text": {"type": "plain_text", "text": clip(text, MAX_HEADER_TEXT)}}


def section(text: str, *, accessory: Block | None = None) -> Block:
    block: Block = {"type": "section", "text": mrkdwn(clip(text, MAX_SECTION_TEXT))}
    if accessory is not None:
        block["accessory"] = accessory
    return block


def fields(items: Sequence[str]) -> Block:
    shown = list(items[:MAX_FIELDS])
    return {"type": "section", "fields": [mrkdwn(clip(t, MAX_FIELD_TEXT)) for t in shown]}


def context(items: Sequence[str]) -> Block:
    return {
        "type": "context",
        "elements": [mrkdwn(clip(t, MAX_SECTION_TEXT)) for t in items[:MAX_CONTEXT_ELEMENTS]],
    }


def divider() -> Block:
    return {"type": "divider"}


def link(url: str, label: str) -> str:
    """A mrkdwn text link `<url|label>`; the label is escaped, and `|` or `>` in the URL
    are percent-encoded so they cannot end the link early."""
    safe_url = url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{safe_url}|{escape(label)}>"


def mrkdwn(text: str) -> dict[str, str]:
    return {"type": "mrkdwn", "text": text}


def button(
    text: str,
    *,
    action_id: str,
    value: str | None = None,
    url: str | None = None,
    style: str | None = None,
    confirm: Block | None = None,
) -> Block:
    element: Block = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": clip(text, MAX_BUTTON_TEXT), "emoji": True},
    }
    if value is not None:
        if len(value) > MAX_BUTTON_VALUE:
            raise ValueError("button values carry an id, never state; this one is too long")
        element["value"] = value
    if url is not None:
        element["url"] = url
    if style is not None:
        element["style"] = style
    if confirm is not None:
        element["confirm"] = confirm
    return element


def confirm(title: str, text: str, *, ok: str, deny: str = "Cancel", danger: bool = False) -> Block:
    """A Block Kit confirmation dialog: Slack asks before the click is sent.

    `danger` colours the confirming button red, for what destroys or weakens protection.
    """
    dialog: Block = {
        "title": {"type": "plain_text", "text": clip(title, MAX_CONFIRM_TITLE)},
        "text": mrkdwn(clip(text, MAX_CONFIRM_TEXT)),
        "confirm": {"type": "plain_text", "text": clip(ok, MAX_CONFIRM_BUTTON)},
        "deny": {"type": "plain_text", "text": clip(deny, MAX_CONFIRM_BUTTON)},
    }
    if danger:
        dialog["style"] = "danger"
    return dialog


def actions(elements: Iterable[Block], *, block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements)[:MAX_ACTIONS]}
    if block_id is not None:
        block["block_id"] = block_id
    return block


def lines_section(lines: Sequence[str], *, more: str | None = None) -> Block:
    """One section with as many whole lines as fit; `more` is appended when some were cut."""
    budget = MAX_SECTION_TEXT - (len(more) + 1 if more else 0)
    kept: list[str] = []
    used = 0
    for line in lines:
        cost = len(line) + (1 if kept else 0)
        if used + cost > budget:
            break
        kept.append(line)
        used += cost
    text = "\n".join(kept)
    if more and len(kept) < len(lines):
        text = f"{text}\n{more}" if text else more
    return section(text or " ")


def paged_sections(lines: Sequence[str], *, per_message: int = MAX_BLOCKS - 2) -> list[list[Block]]:
    """Every line, none lost: whole lines packed into sections, sections into messages.

    Where `lines_section` keeps what fits and says "and more", this is for lists people must
    see whole (the resources of an alert); a line longer than a section is clipped itself.
    """
    sections: list[Block] = []
    current: list[str] = []
    used = 0
    for raw in lines:
        line = clip(raw, MAX_SECTION_TEXT)
        cost = len(line) + (1 if current else 0)
        if current and used + cost > MAX_SECTION_TEXT:
            sections.append(section("\n".join(current)))
            current, used = [], 0
            cost = len(line)
        current.append(line)
        used += cost
    if current:
        sections.append(section("\n".join(current)))
    return [sections[i : i + per_message] for i in range(0, len(sections), per_message)]


def fit(blocks: list[Block], *, reserve: int = 0) -> list[Block]:
    """At most MAX_BLOCKS blocks: the tail is replaced by a note saying how many were cut."""
    limit = MAX_BLOCKS - reserve
    if len(blocks) <= limit:
        return blocks
    kept = blocks[: limit - 1]
    return [*kept, context([f"{ELLIPSIS} {len(blocks) - len(kept)} more blocks not shown"])]
