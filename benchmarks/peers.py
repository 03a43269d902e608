"""The two peers the engine is measured against, fed the same decoded events.

* :class:`UsualClient`: what most chat clients do (clowder-ai's web client among
  them: it matches a callback to "the latest bubble" of the agent): one list of
  bubble dicts per thread; each stream chunk, tool event or ``done`` searches the list
  from the end for the agent's streaming bubble; each callback searches from the end
  for the stream bubble of its turn, else checks the message id is not already there
  (the store's de-duplication) before appending. Text grows by ``+=``, as a client's
  immutable strings do. It is written to be fast at what it does: exact turn ids where
  the wire has them, no copying of the list, no heuristics.
* :class:`LangGraphPeer`: LangGraph's ``add_messages`` reducer (replace by id, append
  otherwise) over one list of LangChain messages per thread. An adapter turns each
  event into the message it changes, with a stable id (the turn id, or the message id
  of a second post), accumulating chunk text by id in a dict (as LangGraph's SDK
  ``MessageTupleManager`` does), and merges it with ``add_messages``.

Both keep bubble state in the same spirit as the engine (text, status, tools,
thinking, blocks, message id), and :func:`agreement` checks that on a lossless
trace they end up showing the same texts as the engine, so the comparison is of
equal work.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

import orjson

_ANNOUNCE = "invocation_created"


def _payload(content: Any) -> dict[str, Any] | None:
    if isinstance(content, str) and content.startswith("{"):
        try:
            value = orjson.loads(content)
        except orjson.JSONDecodeError:
            return None
        return value if isinstance(value, dict) else None
    return None


class UsualClient:
    """A list of bubbles per thread, searched from the end."""

    name = "usual client (list searched from the end)"

    def __init__(self) -> None:
        self.threads: dict[str, list[dict[str, Any]]] = {}
        self.current: dict[tuple[str, str], str] = {}  # (thread, agent) -> announced turn
        self.replaced: dict[tuple[str, str], str] = {}  # (thread, agent) -> turn with callback
        self.count = 0

    def bubble(self, thread: str, cat: str, turn: Any, origin: str, text: str,
               status: str) -> dict[str, Any]:
        self.count += 1
        bubble = {"id": f"b{self.count}", "thread": thread, "cat": cat, "invocation": turn,
                  "origin": origin, "text": text, "status": status, "message_id": None,
                  "thinking": "", "tools": [], "blocks": [], "error": None}
        self.threads[thread].append(bubble)
        return bubble

    def prefill(self, thread: str, records: Iterable[dict[str, Any]]) -> None:
        """Load a thread's stored bubbles in one go (a history fetch)."""
        bubbles = self.threads.setdefault(thread, [])
        for r in records:
            self.count += 1
            bubbles.append({"id": f"b{self.count}", "thread": thread, "cat": r["cat"],
                            "invocation": r["turn"], "origin": "callback", "text": r["text"],
                            "status": "done", "message_id": r["message_id"], "thinking": "",
                            "tools": [], "blocks": [], "error": None})

    @staticmethod
    def streaming(bubbles: list[dict[str, Any]], cat: str) -> dict[str, Any] | None:
        """The agent's streaming bubble, searched from the end."""
        for bubble in reversed(bubbles):
            if bubble["cat"] == cat and bubble["status"] == "streaming":
                return bubble
        return None

    def active(self, thread: str, cat: str, data: dict[str, Any]) -> dict[str, Any]:
        """The streaming bubble, or a new placeholder (``ensureActiveAssistantMessage``)."""
        bubble = self.streaming(self.threads[thread], cat)
        if bubble is None:
            turn = data.get("turnInvocationId") or self.current.get((thread, cat))
            bubble = self.bubble(thread, cat, turn, "stream", "", "streaming")
        return bubble

    def receive(self, message: dict[str, Any]) -> None:
        if message.get("event") != "agent_message":
            return
        data = message["data"]
        kind, thread, cat = data.get("type"), data.get("threadId"), data.get("catId")
        bubbles = self.threads.setdefault(thread, [])
        if kind == "text":
            if data.get("origin") == "callback":
                self.callback(thread, cat, data)
                return
            turn = data.get("turnInvocationId") or self.current.get((thread, cat))
            if turn is not None and self.replaced.get((thread, cat)) == turn:
                return  # the callback already replaced this turn: a late chunk
            bubble = self.streaming(bubbles, cat)
            if bubble is None:
                self.bubble(thread, cat, turn, "stream", data["content"], "streaming")
            else:
                bubble["text"] += data["content"]
        elif kind == "tool_use" or kind == "tool_result":
            entry = {"kind": "use" if kind == "tool_use" else "result",
                     "name": data.get("toolName")}
            if kind == "tool_use":
                entry["input"] = data.get("toolInput")
            else:
                entry["content"] = data.get("content")
            self.active(thread, cat, data)["tools"].append(entry)
        elif kind == "done":
            bubble = self.streaming(bubbles, cat)
            if bubble is not None:
                bubble["status"] = "done"
        elif kind == "error":
            bubble = self.active(thread, cat, data)
            bubble["status"] = "error"
            bubble["error"] = data.get("error") or data.get("content") or None
        elif kind == "a2a_handoff":
            self.bubble(thread, cat, None, "system", data.get("content") or "", "done")
        elif kind == "system_info":
            payload = _payload(data.get("content"))
            if payload is None:
                self.bubble(thread, cat, None, "system", data.get("content") or "", "done")
                return
            agent = payload.get("catId") if isinstance(payload.get("catId"), str) else cat
            sub = payload.get("type")
            if sub == _ANNOUNCE:
                # A new turn ends the agent's previous one.
                previous = self.streaming(bubbles, agent)
                if previous is not None:
                    previous["status"] = "done"
                self.current[thread, agent] = payload.get("invocationId")
            elif sub == "thinking":
                bubble = self.active(thread, agent, data)
                text = payload.get("text") if isinstance(payload.get("text"), str) else ""
                old = bubble["thinking"]
                bubble["thinking"] = f"{old}\n\n{text}" if old else text
            elif sub == "rich_block":
                block = payload.get("block")
                block_id = block.get("id") if isinstance(block, dict) else None
                message_id = payload.get("messageId")
                target = None
                if message_id:
                    for bubble in reversed(bubbles):
                        if bubble["message_id"] == message_id:
                            target = bubble
                            break
                if target is None:
                    target = self.active(thread, agent, data)
                if block_id not in target["blocks"]:
                    target["blocks"].append(block_id)

    def callback(self, thread: str, cat: str, data: dict[str, Any]) -> None:
        bubbles = self.threads[thread]
        turn = data.get("turnInvocationId") or data.get("invocationId")
        message_id = data.get("messageId")
        extra = data.get("extra")
        explicit = isinstance(extra, dict) and extra.get("isExplicitPost") is True
        if not explicit:
            for bubble in reversed(bubbles):  # the stream bubble of this turn
                if (bubble["cat"] == cat and bubble["origin"] == "stream"
                        and bubble["invocation"] == turn):
                    bubble.update(text=data["content"], origin="callback", message_id=message_id)
                    if bubble["status"] != "error":
                        bubble["status"] = "done"
                    self.replaced[thread, cat] = turn
                    return
        if message_id is not None:  # the store refuses a message id it already has
            for bubble in reversed(bubbles):
                if bubble["message_id"] == message_id:
                    bubble["text"] = data["content"]
                    return
        bubble = self.bubble(thread, cat, turn, "callback", data["content"], "done")
        bubble["message_id"] = message_id
        if not explicit:
            self.replaced[thread, cat] = turn

    def texts(self) -> Counter:
        return Counter((b["thread"], b["text"]) for bs in self.threads.values() for b in bs)


class LangGraphPeer:
    """LangGraph's ``add_messages`` over a list of LangChain messages per thread."""

    name = "LangGraph add_messages"

    def __init__(self) -> None:
        from langchain_core.messages import AIMessage, SystemMessage
        from langgraph.graph.message import add_messages

        self.AIMessage, self.SystemMessage = AIMessage, SystemMessage
        self.add_messages = add_messages
        self.state: dict[str, list[Any]] = {}  # thread -> the graph state's "messages"
        self.current: dict[tuple[str, str], str] = {}  # (thread, agent) -> announced turn
        self.fields: dict[str, dict[str, Any]] = {}  # message id -> what it shows
        self.streaming: dict[tuple[str, str], str] = {}  # (thread, agent) -> streaming id
        self.by_message_id: dict[str, str] = {}
        self.count = 0

    def prefill(self, thread: str, records: Iterable[dict[str, Any]]) -> None:
        messages = [self.AIMessage(id=r["turn"], content=r["text"], name=r["cat"],
                                   additional_kwargs={"message_id": r["message_id"]},
                                   response_metadata={"status": "done"}) for r in records]
        self.state[thread] = self.add_messages(self.state.get(thread, []), messages)

    def put(self, thread: str, message_id: str) -> None:
        """Merge the current form of one message into the thread's state."""
        f = self.fields[message_id]
        message = self.AIMessage(
            id=message_id, content=f["text"], name=f["cat"],
            additional_kwargs={"tools": f["tools"], "thinking": f["thinking"],
                               "blocks": f["blocks"], "message_id": f["message_id"],
                               "origin": f["origin"]},
            response_metadata={"status": f["status"], "error": f["error"]})
        self.state[thread] = self.add_messages(self.state.setdefault(thread, []), [message])

    def new(self, message_id: str, cat: str, origin: str, text: str, status: str) -> dict[str, Any]:
        f = self.fields[message_id] = {"cat": cat, "origin": origin, "text": text,
                                       "status": status, "tools": [], "thinking": "",
                                       "blocks": [], "message_id": None, "error": None}
        return f

    def system(self, thread: str, text: str) -> None:
        self.count += 1
        message = self.SystemMessage(content=text, id=f"sys-{self.count}")
        self.state[thread] = self.add_messages(self.state.setdefault(thread, []), [message])

    def active(self, thread: str, cat: str, data: dict[str, Any]) -> str:
        turn = data.get("turnInvocationId") or self.current.get((thread, cat)) or f"?{cat}"
        if turn not in self.fields:
            self.new(turn, cat, "stream", "", "streaming")
            self.streaming[thread, cat] = turn
        return turn

    def receive(self, message: dict[str, Any]) -> None:
        if message.get("event") != "agent_message":
            return
        data = message["data"]
        kind, thread, cat = data.get("type"), data.get("threadId"), data.get("catId")
        if kind == "text":
            if data.get("origin") == "callback":
                self.callback(thread, cat, data)
                return
            turn = self.active(thread, cat, data)
            f = self.fields[turn]
            if f["origin"] != "stream" or f["status"] != "streaming":
                return  # replaced by its callback, or closed
            f["text"] += data["content"]
            self.put(thread, turn)
        elif kind == "tool_use" or kind == "tool_result":
            turn = self.active(thread, cat, data)
            entry = {"kind": "use" if kind == "tool_use" else "result",
                     "name": data.get("toolName")}
            if kind == "tool_use":
                entry["input"] = data.get("toolInput")
            else:
                entry["content"] = data.get("content")
            self.fields[turn]["tools"].append(entry)
            self.put(thread, turn)
        elif kind == "done":
            turn = self.streaming.pop((thread, cat), None)
            if turn is not None and self.fields[turn]["status"] == "streaming":
                self.fields[turn]["status"] = "done"
                self.put(thread, turn)
        elif kind == "error":
            turn = self.active(thread, cat, data)
            self.fields[turn].update(status="error",
                                     error=data.get("error") or data.get("content") or None)
            self.streaming.pop((thread, cat), None)
            self.put(thread, turn)
        elif kind == "a2a_handoff":
            self.system(thread, data.get("content") or "")
        elif kind == "system_info":
            payload = _payload(data.get("content"))
            if payload is None:
                self.system(thread, data.get("content") or "")
                return
            agent = payload.get("catId") if isinstance(payload.get("catId"), str) else cat
            sub = payload.get("type")
            if sub == _ANNOUNCE:
                previous = self.streaming.pop((thread, agent), None)
                if previous is not None and self.fields[previous]["status"] == "streaming":
                    self.fields[previous]["status"] = "done"
                    self.put(thread, previous)
                self.current[thread, agent] = payload.get("invocationId")
            elif sub == "thinking":
                turn = self.active(thread, agent, data)
                text = payload.get("text") if isinstance(payload.get("text"), str) else ""
                f = self.fields[turn]
                f["thinking"] = f"{f['thinking']}\n\n{text}" if f["thinking"] else text
                self.put(thread, turn)
            elif sub == "rich_block":
                block = payload.get("block")
                block_id = block.get("id") if isinstance(block, dict) else None
                target = self.by_message_id.get(payload.get("messageId") or "")
                if target is None:
                    target = self.active(thread, agent, data)
                if block_id not in self.fields[target]["blocks"]:
                    self.fields[target]["blocks"].append(block_id)
                    self.put(thread, target)

    def callback(self, thread: str, cat: str, data: dict[str, Any]) -> None:
        turn = data.get("turnInvocationId") or data.get("invocationId")
        message_id = data.get("messageId")
        extra = data.get("extra")
        explicit = isinstance(extra, dict) and extra.get("isExplicitPost") is True
        f = self.fields.get(turn)
        if not explicit and (f is None or f["origin"] == "stream"):
            target = turn  # the turn's message: replaced by id
            if f is None:
                f = self.new(turn, cat, "callback", "", "done")
        elif not explicit and (message_id is None or message_id == f["message_id"]):
            target = turn  # a redelivery
        else:
            self.count += 1
            target = message_id or f"post-{self.count}"
            f = self.fields.get(target) or self.new(target, cat, "callback", "", "done")
        f.update(text=data["content"], origin="callback", message_id=message_id)
        if f["status"] == "streaming":
            f["status"] = "done"
        if message_id is not None:
            self.by_message_id.setdefault(message_id, target)
        self.put(thread, target)

    def texts(self) -> Counter:
        return Counter((h, m.content) for h, ms in self.state.items() for m in ms)


def langgraph_available() -> bool:
    try:
        import langgraph.graph.message  # noqa: F401
    except ImportError:
        return False
    return True


def agreement(peer: Any, engine_document: dict[str, Any]) -> float:
    """Share of the engine's bubbles that the peer shows with the same text."""
    ours = Counter((h, b["text"]) for h, bs in engine_document["threads"].items() for b in bs)
    total = sum(ours.values())
    return sum((ours & peer.texts()).values()) / total if total else 1.0
