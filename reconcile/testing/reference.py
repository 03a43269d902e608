"""A naive reference model of PROTOCOL 1.1: the oracle the engine is tested against.

Deliberately simple and slow: it recomputes everything from the full list of items
on every call, with plain lists and linear scans, and shares no code with the engine
(it was written separately, from the protocol text alone). The test suite runs it in
lockstep with the engine, and ``reconcile simulate --expected`` uses it to write the
expected final state of a generated trace. Never use it to drive a chat window: it
is O(events x bubbles).

    replay(items) -> dict     # the section 9 document
    activity(items) -> dict   # turn activity: running turns per thread, and the log

Turn activity follows the project's contract for it (not a section of the protocol):
a turn *runs* from the first evidence that its agent works on it (its announcement,
a stored draft of it, or its first bound stream chunk, tool event, thinking or rich
block) while it is not closed, until it closes (done, error, a newer announcement
for its agent, its stored message, or an interruption). A callback alone does not
make a turn run. Closing a running turn logs one close; a turn that never ran closes
silently; a closed turn never runs again. Items may include ``("interrupt", H)``:
the caller closes every running turn of thread H (no line number is used).
"""
import json

KNOWN_TYPES = ("text", "tool_use", "tool_result", "system_info", "error", "done",
               "a2a_handoff")
STRING_FIELDS = ("content", "invocationId", "turnInvocationId", "messageId", "error",
                 "toolName")
PUBLIC_KEYS = ("id", "thread", "cat", "invocation", "origin", "text", "status",
               "message_id", "thinking", "tools", "blocks", "error")


# ---------------------------------------------------------------- small helpers

def _is_id(v):
    # "an id is a non-empty string" (terms)
    return isinstance(v, str) and v != ""


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _reject_constant(name):
    raise ValueError("non-finite constant " + name)


def _has_lone_surrogate(value):
    # walk the decoded value iteratively (no recursion limit issues)
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            for ch in v:
                if "\ud800" <= ch <= "\udfff":
                    return True
        elif isinstance(v, dict):
            for k, x in v.items():
                stack.append(k)
                stack.append(x)
        elif isinstance(v, list):
            stack.extend(v)
    return False


def _strict_json(text):
    """Strict RFC 8259 parse of a str. Returns (ok, value)."""
    if not isinstance(text, str):
        return False, None
    if text.startswith("\ufeff"):  # no byte-order mark
        return False, None
    try:
        text.encode("utf-8")  # a str holding a raw lone surrogate is not UTF-8
    except UnicodeError:
        return False, None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError, TypeError):
        return False, None
    if _has_lone_surrogate(value):  # unpaired \udXXX escapes
        return False, None
    return True, value


def _epoch_key(e):
    # section 6 / decision: epochs equal iff their sorted JSON dumps are equal
    try:
        return "j:" + json.dumps(e, sort_keys=True)
    except (TypeError, ValueError, RecursionError):
        pass
    try:  # not JSON-serialisable (only possible for pre-decoded dict items)
        return "r:" + repr(e)
    except (ValueError, RecursionError):
        return "o:" + str(id(e))


def _error_text(data):
    # section 3 Closing: error if non-empty string, else content, else null
    if _is_id(data.get("error")):
        return data.get("error")
    if _is_id(data.get("content")):
        return data.get("content")
    return None


# ---------------------------------------------------------------- the model

class _Model:
    def __init__(self):
        self.bubbles = []          # every bubble, in creation order
        self.turns = []            # {"thread","id","closed","replaced"}
        self.open_turn = {}        # (thread, agent) -> turn id
        self.latest = {}           # (thread, agent, parent) -> turn id
        self.threads = []          # thread names in order of existence
        self.seen_ts = []          # (thread, timestamp) pairs seen (section 2 step 5)
        self.last_seq = {}         # thread -> (epoch key, seq)
        self.held = []             # (thread, message id, block id) waiting rich blocks
        self.rejected = []
        self.gaps = []
        self.stats = {"events": 0, "ignored": 0, "superseded": 0, "duplicates": 0}
        self.line = 0              # the current item's line number
        self.running = []          # {"thread","cat","turn","since","line"}, opening order
        self.activity_log = []     # ("opened"/"closed", thread, cat, turn, how, line)

    # -------------------------------------------------- bookkeeping

    def reject(self, line, reason, detail):
        self.rejected.append({"line": line, "reason": reason, "detail": detail})

    def touch_thread(self, h):
        if h not in self.threads:
            self.threads.append(h)

    def max_ts(self, h):
        best = None
        for (th, ts) in self.seen_ts:
            if th == h and (best is None or ts > best):
                best = ts
        return 0 if best is None else best

    def find_turn(self, h, t):
        for turn in self.turns:
            if turn["thread"] == h and turn["id"] == t:
                return turn
        return None

    def get_turn(self, h, t):
        turn = self.find_turn(h, t)
        if turn is None:
            turn = {"thread": h, "id": t, "closed": False, "replaced": False,
                    "running": False}
            self.turns.append(turn)
        return turn

    def primary(self, turn):
        for b in self.bubbles:
            if b["_primary_of"] is not None and b["thread"] == turn["thread"] \
                    and b["_primary_of"] == turn["id"]:
                return b
        return None

    def new_bubble(self, h, cat, ts, origin, status, invocation=None, text="",
                   message_id=None, error=None):
        b = {"num": len(self.bubbles) + 1, "ts": ts, "thread": h, "cat": cat,
             "invocation": invocation, "origin": origin, "text": text,
             "status": status, "message_id": None, "thinking": "", "tools": [],
             "blocks": [], "error": error,
             "_primary_of": None, "_post_key": None, "_hist_key": None}
        self.bubbles.append(b)
        if message_id is not None:
            self.set_message_id(b, message_id)
        return b

    def set_message_id(self, b, m):
        b["message_id"] = m
        if m is None:
            return
        # section 5 rich block: held blocks attach when a bubble of H gets message id M
        keep = []
        for (h, mid, blk) in self.held:
            if h == b["thread"] and mid == m:
                self.add_block(b, blk)
            else:
                keep.append((h, mid, blk))
        self.held = keep

    def add_block(self, b, blk):
        if blk not in b["blocks"]:  # each once
            b["blocks"].append(blk)

    def primary_or_create(self, turn, cat, ts):
        # section 5: primary created streaming, or done on a closed turn
        b = self.primary(turn)
        if b is None:
            b = self.new_bubble(turn["thread"], cat, ts, "stream",
                                "done" if turn["closed"] else "streaming",
                                invocation=turn["id"])
            b["_primary_of"] = turn["id"]
        return b

    def close(self, turn, how):
        # section 3 Closing
        turn["closed"] = True
        b = self.primary(turn)
        if b is not None and b["status"] == "streaming":
            b["status"] = "done"
        self.stop_running(turn, how)

    def stop_running(self, turn, how):
        # activity: a running turn stops (once); one that never ran closes silently
        if turn["running"]:
            turn["running"] = False
            rec = [r for r in self.running
                   if r["thread"] == turn["thread"] and r["turn"] == turn["id"]][0]
            self.running.remove(rec)
            self.activity_log.append(("closed", turn["thread"], rec["cat"], turn["id"],
                                      how, self.line))

    def start(self, turn, agent, ts):
        # activity: evidence of work starts a turn that is not closed and not running
        if turn["closed"] or turn["running"] or turn.get("finished"):
            return
        turn["running"] = True
        self.running.append({"thread": turn["thread"], "cat": agent, "turn": turn["id"],
                             "since": ts, "line": self.line})
        self.activity_log.append(("opened", turn["thread"], agent, turn["id"], None,
                                  self.line))

    def interrupt(self, h):
        for rec in list(self.running):
            if rec["thread"] == h:
                self.close(self.find_turn(h, rec["turn"]), "interrupted")

    def open_of(self, h, agent):
        t = self.open_turn.get((h, agent))
        if t is None:
            return None
        turn = self.find_turn(h, t)
        if turn is None or turn["closed"]:
            return None
        return turn

    def bind(self, h, agent, data):
        # section 3 Binding rules 1-3
        if _is_id(data.get("turnInvocationId")):
            return self.get_turn(h, data["turnInvocationId"])
        if _is_id(data.get("invocationId")):
            t = self.latest.get((h, agent, data["invocationId"]))
            if t is None:
                return None
            return self.get_turn(h, t)
        return self.open_of(h, agent)

    def announce(self, h, agent, t, parent, ts):
        # section 3 Announcing
        turn = self.get_turn(h, t)
        cur = self.open_of(h, agent)
        if cur is not None and cur["id"] != t:
            self.close(cur, "superseded")
        if not turn["closed"]:
            self.open_turn[(h, agent)] = t
        if _is_id(parent):
            self.latest[(h, agent, parent)] = t
        self.start(turn, agent, ts)

    def place_callback(self, h, t, content, m, cat, ts, explicit):
        # section 4.2 / 4.3
        turn = self.get_turn(h, t)
        p = self.primary(turn)
        if not explicit:
            if p is None:
                b = self.new_bubble(h, cat, ts, "callback", "done", invocation=t,
                                    text=content)
                b["_primary_of"] = t
                self.set_message_id(b, m)
                turn["replaced"] = True
                return
            if p["origin"] == "stream":
                p["text"] = content
                p["origin"] = "callback"
                if p["status"] != "error":
                    p["status"] = "done"
                self.set_message_id(p, m)
                turn["replaced"] = True
                return
            if p["origin"] == "callback" and (m is None or m == p["message_id"]):
                p["text"] = content  # redelivery
                return
        # second post, keyed (H, T, messageId); explicit post without id: always new
        if m is not None:
            for b in self.bubbles:
                if b["thread"] == h and b["_post_key"] == (t, m):
                    b["text"] = content
                    return
        b = self.new_bubble(h, cat, ts, "callback", "done", invocation=t, text=content)
        if m is not None:
            b["_post_key"] = (t, m)
        self.set_message_id(b, m)

    def system_bubble(self, h, cat, ts, text, status="done", error=None):
        self.new_bubble(h, cat, ts, "system", status, text=text, error=error)

    # -------------------------------------------------- section 1

    def decode(self, item, line):
        """Returns (event, data) or None when the item is blank / malformed."""
        if isinstance(item, dict):
            ev, data = item.get("event"), item.get("data")
            if isinstance(ev, str) and isinstance(data, dict):
                return ev, data
            self.reject(line, "malformed_line", "object lacks a string event or an object data")
            return None
        if isinstance(item, (bytes, bytearray)):
            # blank: spaces, tabs, \r (and \n: a line passed with its own terminator)
            if all(c in b" \t\r\n" for c in item):
                return "blank"
            try:
                text = bytes(item).decode("utf-8")
            except UnicodeError:
                self.reject(line, "malformed_line", "line is not valid UTF-8")
                return None
        elif isinstance(item, str):
            if all(c in " \t\r\n" for c in item):
                return "blank"
            text = item
        else:
            self.reject(line, "malformed_line", "item is not a line or an object")
            return None
        ok, obj = _strict_json(text)
        if not ok:
            self.reject(line, "malformed_line", "line is not strict JSON")
            return None
        if not isinstance(obj, dict):
            self.reject(line, "malformed_line", "line is not a JSON object")
            return None
        ev, data = obj.get("event"), obj.get("data")
        if not (isinstance(ev, str) and isinstance(data, dict)):
            self.reject(line, "malformed_line", "object lacks a string event or an object data")
            return None
        return ev, data

    # -------------------------------------------------- section 2

    def agent_message(self, line, d):
        # step 1: envelope
        for k in ("type", "threadId", "catId"):
            if not isinstance(d.get(k), str):
                self.reject(line, "malformed_event", "envelope field %s is not a string" % k)
                return
        typ, h, cat = d["type"], d["threadId"], d["catId"]
        # step 2: known type
        if typ not in KNOWN_TYPES:
            self.stats["ignored"] += 1
            return
        # step 3: fields
        if d.get("timestamp") is not None and not _is_int(d.get("timestamp")):
            self.reject(line, "malformed_event", "timestamp is not an integer")
            return
        for k in STRING_FIELDS:
            if d.get(k) is not None and not isinstance(d.get(k), str):
                self.reject(line, "malformed_event", "field %s is not a string" % k)
                return
        if d.get("seq") is not None and not _is_int(d.get("seq")):
            self.reject(line, "malformed_event", "seq is not an integer")
            return
        if typ == "text":
            if not isinstance(d.get("content"), str):
                self.reject(line, "malformed_event", "text without string content")
                return
            if d.get("origin") is not None and d.get("origin") not in ("stream", "callback"):
                self.reject(line, "malformed_event", "text origin is not stream or callback")
                return
        if typ == "system_info" and not isinstance(d.get("content"), str):
            self.reject(line, "malformed_event", "system_info without string content")
            return
        # step 4: seq (section 6)
        if _is_int(d.get("seq")):
            seq, ek = d["seq"], _epoch_key(d.get("seqEpoch"))
            last = self.last_seq.get(h)
            if last is not None and last[0] == ek:
                if seq <= last[1]:
                    self.stats["duplicates"] += 1
                    return
                if seq > last[1] + 1:
                    self.gaps.append({"thread": h, "after": last[1], "before": seq})
            self.last_seq[h] = (ek, seq)
        # step 5: timestamp
        if _is_int(d.get("timestamp")):
            ts = d["timestamp"]
            self.seen_ts.append((h, ts))
        else:
            ts = self.max_ts(h)
        # step 6: thread exists
        self.touch_thread(h)
        # step 7: apply
        if typ == "text":
            self.apply_text(line, d, h, cat, ts)
        elif typ in ("tool_use", "tool_result"):
            turn = self.bind(h, cat, d)
            if turn is None:
                self.reject(line, "unbound_event", "%s binds to no turn" % typ)
                return
            self.start(turn, cat, ts)
            b = self.primary_or_create(turn, cat, ts)
            if typ == "tool_use":
                b["tools"].append({"kind": "use", "name": d.get("toolName"),
                                   "input": d.get("toolInput")})
            else:
                b["tools"].append({"kind": "result", "name": d.get("toolName"),
                                   "content": d.get("content")})
        elif typ == "done":
            turn = self.bind(h, cat, d)
            if turn is not None:
                self.close(turn, "done")
        elif typ == "error":
            turn = self.bind(h, cat, d)
            err = _error_text(d)
            if turn is None:
                self.system_bubble(h, cat, ts, "", status="error", error=err)
                return
            b = self.primary_or_create(turn, cat, ts)
            b["status"] = "error"
            b["error"] = err
            self.close(turn, "error")
        elif typ == "system_info":
            self.apply_system_info(line, d, h, cat, ts)
        elif typ == "a2a_handoff":
            text = d.get("content") if isinstance(d.get("content"), str) else ""
            self.system_bubble(h, cat, ts, text)

    def apply_text(self, line, d, h, cat, ts):
        if d.get("origin") == "callback":
            # section 4.1 identity
            if _is_id(d.get("turnInvocationId")):
                t = d["turnInvocationId"]
            elif _is_id(d.get("invocationId")):
                t = d["invocationId"]
            else:
                self.reject(line, "callback_without_invocation", "callback carries no turn id")
                return
            extra = d.get("extra")
            explicit = isinstance(extra, dict) and extra.get("isExplicitPost") is True
            m = d["messageId"] if _is_id(d.get("messageId")) else None
            self.place_callback(h, t, d["content"], m, cat, ts, explicit)
            return
        turn = self.bind(h, cat, d)
        if turn is None:
            self.reject(line, "unbound_event", "stream text binds to no turn")
            return
        self.start(turn, cat, ts)  # bound stream text is evidence of work (even stale)
        if turn["replaced"]:
            self.stats["superseded"] += 1
            return
        if turn["closed"]:
            self.reject(line, "stream_after_done", "stream text for closed turn %s" % turn["id"])
            return
        b = self.primary_or_create(turn, cat, ts)
        b["text"] += d["content"]

    def apply_system_info(self, line, d, h, cat, ts):
        ok, payload = _strict_json(d["content"])
        if not (ok and isinstance(payload, dict)):
            self.system_bubble(h, cat, ts, d["content"])  # section 5 plain system line
            return
        agent = payload.get("catId") if isinstance(payload.get("catId"), str) else cat
        ptype = payload.get("type")
        if ptype == "invocation_created":
            t = payload.get("invocationId")
            if not _is_id(t):
                self.reject(line, "malformed_event", "invocation_created without an invocationId")
                return
            self.announce(h, agent, t, d.get("invocationId"), ts)
        elif ptype == "thinking":
            turn = self.bind(h, agent, d)
            if turn is None:
                self.reject(line, "unbound_event", "thinking binds to no turn")
                return
            self.start(turn, agent, ts)
            text = payload.get("text") if isinstance(payload.get("text"), str) else ""
            b = self.primary_or_create(turn, agent, ts)
            b["thinking"] = text if b["thinking"] == "" else b["thinking"] + "\n\n" + text
        elif ptype == "rich_block":
            block = payload.get("block")
            if not (isinstance(block, dict) and isinstance(block.get("id"), str)):
                self.reject(line, "malformed_event", "rich_block without a block id")
                return
            blk = block["id"]
            m = payload.get("messageId")
            if _is_id(m):
                for b in self.bubbles:  # first-created bubble of H with message id M
                    if b["thread"] == h and b["message_id"] == m:
                        self.add_block(b, blk)
                        return
                self.held.append((h, m, blk))
                return
            turn = self.bind(h, agent, d)
            if turn is None:
                self.reject(line, "unbound_event", "rich block binds to no turn")
                return
            self.start(turn, agent, ts)
            self.add_block(self.primary_or_create(turn, agent, ts), blk)
        else:
            self.stats["ignored"] += 1  # JSON payload that makes nothing

    # -------------------------------------------------- section 7

    def history(self, line, d):
        h, msgs = d.get("threadId"), d.get("messages")
        if not (isinstance(h, str) and isinstance(msgs, list)):
            self.reject(line, "malformed_event", "history without threadId or messages")
            return
        self.touch_thread(h)
        for msg in msgs:
            if not (isinstance(msg, dict) and isinstance(msg.get("catId"), str)
                    and _is_id(msg.get("id"))):
                continue
            mid, cat = msg["id"], msg["catId"]
            content = msg.get("content") if isinstance(msg.get("content"), str) else ""
            if _is_int(msg.get("timestamp")):
                ts = msg["timestamp"]
                self.seen_ts.append((h, ts))
            else:
                ts = self.max_ts(h)
            t = None
            extra = msg.get("extra")
            stream = extra.get("stream") if isinstance(extra, dict) else None
            if isinstance(stream, dict) and _is_id(stream.get("invocationId")):
                t = stream["invocationId"]
            elif mid.startswith("draft-") and _is_id(mid[len("draft-"):]):
                t = mid[len("draft-"):]
            if msg.get("origin") == "callback":
                for b in self.bubbles:
                    if b["thread"] == h and b["message_id"] == mid:
                        b["text"] = content
                        break
                else:
                    if t is not None:
                        # applied exactly as a live callback, so 4.3 holds too
                        extra = msg.get("extra")
                        explicit = isinstance(extra, dict) and extra.get("isExplicitPost") is True
                        self.place_callback(h, t, content, mid, cat, ts, explicit)
                    else:
                        # 1.1: a stored callback without its turn is refused, one
                        # refusal per message, with the history event's line
                        self.reject(line, "callback_without_invocation",
                                    "stored callback carries no turn id")
            elif msg.get("isDraft") is True or mid.startswith("draft-"):
                if t is None:
                    continue
                # 1.1: a draft whose turn H does not know yet, naming its parent,
                # announces the turn under that parent first
                parent = stream.get("parentInvocationId") if isinstance(stream, dict) else None
                if self.find_turn(h, t) is None and _is_id(parent):
                    self.announce(h, cat, t, parent, ts)
                turn = self.get_turn(h, t)
                self.start(turn, cat, ts)  # a draft: the turn is in progress
                if self.primary(turn) is None:
                    b = self.primary_or_create(turn, cat, ts)
                    b["text"] = content
            elif t is not None:
                turn = self.get_turn(h, t)
                if not turn["replaced"]:
                    b = self.primary_or_create(turn, cat, ts)
                    b["text"] = content
                    self.close(turn, "stored")
                else:
                    # replaced: the turn stays open for the protocol, but its agent
                    # finished it (the server stored its message): it stops running
                    self.stop_running(turn, "stored")
                    turn["finished"] = True  # and it never runs again
            else:
                for b in self.bubbles:
                    if b["thread"] == h and b["_hist_key"] == mid:
                        b["text"] = content
                        break
                else:
                    b = self.new_bubble(h, cat, ts, "stream", "done", text=content)
                    b["_hist_key"] = mid

    # -------------------------------------------------- section 9

    def output(self):
        threads = {}
        for h in self.threads:
            mine = [b for b in self.bubbles if b["thread"] == h]
            mine.sort(key=lambda b: (b["ts"], b["num"]))
            out = []
            for b in mine:
                d = {k: b[k] for k in PUBLIC_KEYS if k != "id"}
                d["id"] = "b" + str(b["num"])
                d["tools"] = [dict(x) for x in b["tools"]]
                d["blocks"] = list(b["blocks"])
                out.append({k: d[k] for k in PUBLIC_KEYS})
            threads[h] = out
        return {"threads": threads, "rejected": [dict(r) for r in self.rejected],
                "stats": dict(self.stats), "gaps": [dict(g) for g in self.gaps]}


def _run(items):
    m = _Model()
    line = 0
    for item in list(items):
        if isinstance(item, tuple) and len(item) == 2 and item[0] == "interrupt":
            m.interrupt(item[1])  # not a line: it uses no line number
            continue
        line += 1
        m.line = line
        got = m.decode(item, line)
        if got is None or got == "blank":
            continue
        event, data = got
        m.stats["events"] += 1
        if event == "agent_message":
            m.agent_message(line, data)
        elif event == "history":
            m.history(line, data)
        else:
            m.stats["ignored"] += 1
    return m


def replay(items):
    """Replay trace items (str/bytes lines or decoded dicts); return the section 9 doc."""
    return _run(items).output()


def activity(items):
    """Replay items; return the turn activity:
    ``{"running": {thread: [(cat, turn, since, line), ...]}, "log": [...]}`` where the
    log lists ``("opened" | "closed", thread, cat, turn, how, line)`` in order."""
    m = _run(items)
    running = {}
    for r in m.running:
        running.setdefault(r["thread"], []).append((r["cat"], r["turn"], r["since"], r["line"]))
    return {"running": running, "log": list(m.activity_log)}
