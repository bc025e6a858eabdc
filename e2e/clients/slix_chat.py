#!/usr/bin/python3
"""Drive a server's 1:1 chat state with slixmpp: forking to every client of
both parties, carbons, MAM archives (XEP-0313), stanza IDs (XEP-0359),
stream management with resumption (XEP-0198) and offline delivery.

Usage: slix_chat.py PORT SCENARIO ARGS...

  fork    ROMEO_JID PW JULIET_JID PW
  resume  JID PW PEER_JID PEER_PW
  offline SENDER_JID PW RECIPIENT_JID PW
  mam-bad JID PW [PEER_JID PEER_PW]
  burst   JID PW PEER_JID N
  count   JID PW WITH_JID

Prints one JSON object per line on stdout: facts, not verdicts. Exits 0
when the scenario ran, non-zero (message on stderr) when it could not.
"""
import asyncio
import ssl
import sys
import xml.etree.ElementTree as ET

import slixmpp

from common import Fatal, child, delay_of, error_fact, error_of, inner_message, local, mam_query, out, quiet_down, rand, run, stanza_ids
from slixmpp.exceptions import IqError, IqTimeout
from slixmpp.xmlstream.handler import Callback
from slixmpp.xmlstream.matcher import MatchXPath

NS_CLIENT = "jabber:client"
NS_SID = "urn:xmpp:sid:0"
NS_MAM = "urn:xmpp:mam:2"
NS_CARBONS = "urn:xmpp:carbons:2"
NS_FORWARD = "urn:xmpp:forward:0"
NS_DELAY = "urn:xmpp:delay"
NS_SM = "urn:xmpp:sm:3"
NS_DATA = "jabber:x:data"
NS_RSM = "http://jabber.org/protocol/rsm"
NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas"
NS_STREAMS = "http://etherx.jabber.org/streams"


def msg_fields(m):
    """Facts about one <message/> element."""
    if m is None:
        return {"id": None}
    body = None
    for c in m:
        if local(c.tag) == "body":
            body = c.text or ""
    origin = child(m, NS_SID, "origin-id")
    f = {
        "id": m.get("id"),
        "type": m.get("type", "normal"),
        "from": m.get("from"),
        "to": m.get("to"),
        "body": body,
        "stanza_ids": stanza_ids(m),
        "origin_id": origin.get("id") if origin is not None else None,
        "delay": delay_of(m),
    }
    if m.get("type") == "error":
        f["error"] = error_of(m)
    return f


class Client(slixmpp.ClientXMPP):
    def __init__(self, jid, password, resource, label, sm=True, sm_window=None):
        jid = slixmpp.JID(jid)
        super().__init__("%s/%s" % (jid.bare, resource), password)
        self.label = label
        # The server's certificate is self-signed in tests.
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        for p in ("xep_0030", "xep_0004", "xep_0059", "xep_0297", "xep_0280",
                  "xep_0313", "xep_0359", "xep_0203"):
            self.register_plugin(p)
        if sm:
            cfg = {"window": sm_window} if sm_window else {}
            self.register_plugin("xep_0198", pconfig=cfg)
        self.sm = sm
        self.phase = "login"
        self.inbox = []            # every non-MAM message received, parsed
        self.mam_results = {}      # queryid -> [result facts]
        self.sm_in = []            # SM nonzas received: (phase, name, attrs)
        self.wire_out = []         # (phase, raw text) of everything sent
        self.offered = []          # child tags of the last <stream:features/>
        self.bound_stream_id = None
        self.loop_ = asyncio.get_event_loop()
        self._fresh_futures()
        self.register_handler(Callback("annals message", MatchXPath("{%s}message" % NS_CLIENT), self._on_message))
        self.add_filter("in", self._in_filter)
        self.add_event_handler("session_bind", self._on_bind)
        self.add_event_handler("stream_negotiated", lambda _: self._settle("negotiated", True))
        self.add_event_handler("session_resumed", lambda _: self._settle("resumed", True))
        self.add_event_handler("sm_failed", lambda _: self._settle("sm_failed", True))
        self.add_event_handler("failed_auth", lambda _: self._settle("negotiated", False))
        self.add_event_handler("disconnected", self._on_disconnected)

    def _fresh_futures(self):
        self.futs = {k: self.loop_.create_future() for k in ("negotiated", "resumed", "sm_failed", "disconnected")}

    def _settle(self, name, value):
        f = self.futs.get(name)
        if f is not None and not f.done():
            f.set_result(value)

    def _on_disconnected(self, _):
        self._settle("disconnected", True)
        self._settle("negotiated", False)

    def _on_bind(self, _):
        # The id of the stream header of the stream where the resource was bound.
        self.bound_stream_id = self.stream_id

    def send_raw(self, data):
        self.wire_out.append((self.phase, data.decode("utf-8", "replace") if isinstance(data, bytes) else data))
        return super().send_raw(data)

    def _in_filter(self, st):
        tag = st.xml.tag
        if tag.startswith("{%s}" % NS_SM):
            attrs = dict(st.xml.attrib)
            if local(tag) in ("resumed", "failed") and self.sm:
                # Runs before the plugin's own handler: what it still holds.
                attrs["_client_unacked"] = [s["id"] for _, s in self["xep_0198"].unacked_queue]
            self.sm_in.append((self.phase, local(tag), attrs))
        elif tag == "{%s}features" % NS_STREAMS:
            self.offered = [c.tag for c in st.xml]
        return st

    def _on_message(self, msg):
        x = msg.xml
        res = child(x, NS_MAM, "result")
        if res is not None:
            fwd, m = inner_message(res)
            r = {"result_id": res.get("id"), "forwarded_delay": delay_of(fwd) if fwd is not None else None}
            r.update(msg_fields(m))
            self.mam_results.setdefault(res.get("queryid"), []).append(r)
            return
        rec = {"phase": self.phase}
        for kind in ("sent", "received"):
            wrap = child(x, NS_CARBONS, kind)
            if wrap is not None:
                _, m = inner_message(wrap)
                rec.update(kind="carbon-" + kind, outer_from=x.get("from"), outer_to=x.get("to"),
                           outer_stanza_ids=stanza_ids(x))
                rec.update(msg_fields(m))
                break
        else:
            rec["kind"] = "direct"
            rec.update(msg_fields(x))
        self.inbox.append(rec)

    async def login(self, port, timeout=20):
        self.connect(address=("127.0.0.1", port))
        try:
            ok = await asyncio.wait_for(self.futs["negotiated"], timeout)
        except asyncio.TimeoutError:
            raise Fatal("%s: login timed out" % self.label)
        if not ok:
            raise Fatal("%s: login failed" % self.label)
        self.phase = "session"

    def sm_facts(self):
        """What stream management looks like on this client now."""
        if not self.sm:
            return {"registered": False}
        p = self["xep_0198"]
        enable = [d for _, d in self.wire_out if "<enable" in d and NS_SM in d]
        enabled = [a for _, n, a in self.sm_in if n == "enabled"]
        return {
            "offered": "{%s}sm" % NS_SM in self.offered or any(n in ("enabled", "failed") for _, n, _ in self.sm_in),
            "enable_sent": enable[-1] if enable else None,
            "enabled": bool(enabled),
            "enabled_attrs": enabled[-1] if enabled else None,
            "failed": [a for _, n, a in self.sm_in if n == "failed"],
            "resume_id": p.sm_id,
            "handled": p.handled,
            "seq": p.seq,
            "last_ack": p.last_ack,
            "unacked": [s["id"] for _, s in p.unacked_queue],
        }

    def session_fact(self, carbons=None):
        out(event="session", who=self.label, jid=str(self.boundjid.full), stream_id=self.bound_stream_id,
            current_stream_id=self.stream_id, sm=self.sm_facts(), carbons=carbons)

    async def enable_carbons(self):
        try:
            await self["xep_0280"].enable(timeout=10)
            return "enabled"
        except IqError as e:
            return error_fact(e)["condition"] or "error"
        except IqTimeout:
            return "timeout"

    def chat(self, to, body, mtype="chat", mid=None, extra=None):
        mid = mid or "m-" + rand()
        m = self.make_message(mto=to, mbody=body, mtype=mtype)
        m["id"] = mid
        for e in extra or ():
            m.xml.append(e)
        m.send()
        return mid

    async def mam(self, name, fields=None, rsm=None, form_type=NS_MAM, timeout=15, report=True):
        return await mam_query(self, name, fields=fields, rsm=rsm, form_type=form_type, timeout=timeout, report=report)

    async def settle(self, clients=None, quiet=1.5, cap=10.0):
        """Wait until no client's inbox grew for `quiet` seconds (at most cap)."""
        clients = clients or [self]
        await quiet_down(lambda: sum(len(c.inbox) for c in clients), quiet, cap)

    async def close(self):
        try:
            await asyncio.wait_for(self.disconnect(), 5)
        except Exception:
            self.abort()


def report_inbox(c, phase=None):
    for rec in c.inbox:
        if phase is None or rec["phase"] == phase:
            out(event="received", who=c.label, **rec)


def archive_counts(fact, ids):
    """How often each message id appears among a MAM answer's results."""
    return {i: sum(1 for r in fact.get("results", []) if r.get("id") == i) for i in ids}


async def fork(port, romeo, rpw, juliet, jpw):
    rd = Client(romeo, rpw, "desk", "romeo/desk")
    rp = Client(romeo, rpw, "phone", "romeo/phone")
    jd = Client(juliet, jpw, "desk", "juliet/desk")
    jp = Client(juliet, jpw, "phone", "juliet/phone")
    clients = [rd, rp, jd, jp]
    await asyncio.gather(*(c.login(port) for c in clients))
    for c in clients:
        c.send_presence()
    carbons = await asyncio.gather(*(c.enable_carbons() for c in clients))
    for c, cb in zip(clients, carbons):
        c.session_fact(carbons=cb)
    await asyncio.sleep(1.0)
    for c in clients:
        c.inbox.clear()
        c.phase = "fork"
    n = rand()
    sid = rd.bound_stream_id
    sent = []
    for mid, to, mtype, body in (("m1-" + n, jd.boundjid.bare, "chat", "but soft " + n),
                                 ("m2-" + n, jd.boundjid.full, "normal", "what light " + n)):
        rd.chat(to, body, mtype=mtype, mid=mid)
        sent.append(mid)
        out(event="sent", who=rd.label, id=mid, type=mtype, to=str(to), body=body, stream_id=sid,
            resume_id=rd["xep_0198"].sm_id, expected="%s:%s" % (sid, mid))
    await rd.settle(clients)
    for c in clients:
        report_inbox(c, "fork")
    expected = ["%s:%s" % (sid, mid) for mid in sent]
    a = await rd.mam("ids", fields=[("ids", expected)])
    b = await rd.mam("after-id", fields=[("after-id", [expected[0]])])
    rw = await rd.mam("with", fields=[("with", [jd.boundjid.bare])])
    jw = await jd.mam("with", fields=[("with", [rd.boundjid.bare])])
    romeo_ids = [r["result_id"] for r in rw["results"]]
    out(event="archive-check", expected=expected,
        romeo_result_ids=romeo_ids, juliet_result_ids=[r["result_id"] for r in jw["results"]],
        expected_in_romeo_archive={e: e in romeo_ids for e in expected},
        romeo_counts=archive_counts(rw, sent), juliet_counts=archive_counts(jw, sent),
        ids_query_ids=[r["id"] for r in a.get("results", [])], after_id_query_ids=[r["id"] for r in b.get("results", [])],
        stanza_ids_on_copies={c.label: [s for rec in c.inbox for s in rec["stanza_ids"]] for c in clients})
    for c in clients:
        await c.close()


async def resume(port, jid, pw, peer_jid, peer_pw):
    a = Client(jid, pw, "res", "client", sm_window=1000)  # acks only when we ask for them
    p = Client(peer_jid, peer_pw, "peer", "peer")
    await p.login(port)
    await a.login(port)
    for c in (a, p):
        c.send_presence()
    await asyncio.sleep(0.5)
    a.session_fact()
    p.session_fact()
    a.phase = p.phase = "before-cut"
    n = rand()
    to = p.boundjid.bare
    ids = ["r1-" + n, "r2-" + n]
    for mid in ids:
        a.chat(to, "before cut " + mid, mid=mid)
        out(event="sent", who="client", id=mid, phase="before-cut", expected="%s:%s" % (a.bound_stream_id, mid))
    sm = a["xep_0198"]
    acked = False
    if sm.enabled_out:
        # request_ack() writes <r/> at once, ahead of stanzas still queued.
        await asyncio.wait_for(a.waiting_queue.join(), 5)
        for _ in range(20):
            sm.request_ack()
            await asyncio.sleep(0.25)
            if not sm.unacked_queue:
                acked = True
                break
    out(event="acked", who="client", ok=acked, last_ack=sm.last_ack, seq=sm.seq, unacked=a.sm_facts()["unacked"])
    unacked_id = "r3-" + n
    a.chat(to, "unacked " + unacked_id, mid=unacked_id)
    out(event="sent", who="client", id=unacked_id, phase="unacked", expected="%s:%s" % (a.bound_stream_id, unacked_id))
    await asyncio.sleep(0.7)  # let the server read and route it; no <r/> is sent
    before = a.sm_facts()
    old_stream = a.bound_stream_id
    a._fresh_futures()
    a.phase = "cut"
    a.transport.abort()  # no </stream:stream>, no TLS close_notify
    await asyncio.wait_for(a.futs["disconnected"], 10)
    a._fresh_futures()
    out(event="cut", who="client", handled=before["handled"], seq=before["seq"], last_ack=before["last_ack"],
        unacked=before["unacked"], resume_id=before["resume_id"], stream_id=old_stream)
    # Something for the server to hold while the client is away.
    p.phase = "during-cut"
    held_id = "p1-" + n
    p.chat(a.boundjid.full, "while you were away", mid=held_id)
    out(event="sent", who="peer", id=held_id, to=str(a.boundjid.full), phase="during-cut")
    await asyncio.sleep(1.0)
    a.phase = "reconnect"
    mark = len(a.wire_out)
    a.connect(address=("127.0.0.1", port))
    done, _ = await asyncio.wait([a.futs["resumed"], a.futs["negotiated"]], timeout=20,
                                 return_when=asyncio.FIRST_COMPLETED)
    if not done:
        raise Fatal("client: no resumption nor new session within 20s")
    resumed = a.futs["resumed"].done()
    await asyncio.sleep(1.5)
    a.phase = p.phase = "after-resume"
    wire = [d for _, d in a.wire_out[mark:]]
    resume_sent = [d for d in wire if "<resume" in d]
    auto_resent = [i for i in [unacked_id] + ids if any(('id="%s"' % i) in d or ("id='%s'" % i) in d for d in wire)]
    answer = [(nm, at) for ph, nm, at in a.sm_in if ph == "reconnect" and nm in ("resumed", "failed", "enabled")]
    out(event="resume", who="client", result="resumed" if resumed else "failed", resume_sent=resume_sent,
        answer=answer, h_sent=before["handled"], server_h=next((at.get("h") for nm, at in answer if nm in ("resumed", "failed")), None),
        old_stream_id=old_stream, new_stream_id=a.stream_id, bound_stream_id=a.bound_stream_id,
        jid=str(a.boundjid.full), library_resent=auto_resent, sm=a.sm_facts())
    for rec in a.inbox:
        if rec["phase"] in ("reconnect", "after-resume"):
            out(event="retransmitted", who="client", **rec)
    # Resend the unacknowledged message ourselves, same id, as a client that
    # does not trust the library's queue would.
    a.phase = "resend"
    a.chat(to, "unacked " + unacked_id, mid=unacked_id)
    out(event="resend", who="client", id=unacked_id, library_had_resent=unacked_id in auto_resent)
    after_id = "r4-" + n
    a.chat(to, "after resume " + after_id, mid=after_id)
    out(event="sent", who="client", id=after_id, phase="after-resume", expected="%s:%s" % (a.bound_stream_id, after_id))
    await a.settle([a, p], quiet=2.0)
    report_inbox(p)
    all_ids = ids + [unacked_id, after_id]
    got = [r["id"] for r in p.inbox if r["kind"] == "direct"]
    out(event="peer-summary", who="peer", counts={i: got.count(i) for i in all_ids})
    got_a = [r["id"] for r in a.inbox if r["kind"] == "direct"]
    out(event="client-summary", who="client", counts={held_id: got_a.count(held_id)})
    am = await a.mam("with", fields=[("with", [p.boundjid.bare])])
    pm = await p.mam("with", fields=[("with", [a.boundjid.bare])])
    expected = ["%s:%s" % (old_stream, i) for i in all_ids]
    ai = await a.mam("ids", fields=[("ids", expected)])
    out(event="archive-check", client_counts=archive_counts(am, all_ids + [held_id]),
        peer_counts=archive_counts(pm, all_ids + [held_id]), expected=expected,
        ids_query_ids=[r["id"] for r in ai.get("results", [])])
    await a.close()
    await p.close()


async def offline(port, sender, spw, recipient, rpw):
    s = Client(sender, spw, "out", "sender")
    await s.login(port)
    s.send_presence()
    s.session_fact()
    s.phase = "send"
    n = rand()
    to = slixmpp.JID(recipient).bare
    sent = []
    for i, mtype in ((1, "chat"), (2, "chat")):
        mid = "o%d-%s" % (i, n)
        body = "offline %d %s" % (i, n)
        s.chat(to, body, mtype=mtype, mid=mid)
        sent.append(mid)
        out(event="sent", who="sender", id=mid, to=to, type=mtype, body=body,
            expected="%s:%s" % (s.bound_stream_id, mid))
    await s.settle(quiet=1.5, cap=4)
    report_inbox(s, "send")  # bounces, if any
    await s.close()
    await asyncio.sleep(0.5)
    r = Client(recipient, rpw, "late", "recipient")
    await r.login(port)
    r.phase = "presence"
    r.send_presence()
    await r.settle(quiet=2.0)
    r.session_fact()
    report_inbox(r)
    got = [x["id"] for x in r.inbox]
    out(event="offline-summary", counts={i: got.count(i) for i in sent})
    m = await r.mam("with", fields=[("with", [s.boundjid.bare])])
    out(event="archive-check", who="recipient", counts=archive_counts(m, sent),
        result_ids=[x["result_id"] for x in m["results"]])
    await r.close()


async def mam_bad(port, jid, pw, peer=None, peer_pw=None):
    c = Client(jid, pw, "bad", "client")
    await c.login(port)
    c.send_presence()
    p = None
    if peer:
        p = Client(peer, peer_pw, "bad", "peer")
        await p.login(port)
        p.send_presence()
    await asyncio.sleep(0.5)
    c.session_fact()
    n = rand()
    c.phase = "spoof"
    spoof_by = c.boundjid.bare
    targets = [("self", c.boundjid.bare)] + ([("peer", p.boundjid.bare)] if p else [])
    for label, to in targets:
        el = ET.Element("{%s}stanza-id" % NS_SID, {"by": spoof_by, "id": "spoof"})
        mid = "spoof-%s-%s" % (label, n)
        c.chat(to, "spoofed stanza-id " + n, mid=mid, extra=[el])
        out(event="sent", who="client", id=mid, to=to, spoofed={"by": spoof_by, "id": "spoof"})
    await c.settle([c] + ([p] if p else []))
    for who in [c] + ([p] if p else []):
        for rec in who.inbox:
            if rec["phase"] == "spoof" or who is p:
                out(event="spoof-copy", who=who.label, **rec)
    # More messages than the server's largest page, archived (SM-acked)
    # before the queries, so that a huge max shows the clamp.
    await send_acked(c, c.boundjid.bare, ["f%d-%s" % (i, n) for i in range(300)], "filler")
    unknown = "no-such-id-" + n
    await c.mam("no-form-type", fields=[("with", [c.boundjid.bare])], form_type=None)
    await c.mam("wrong-form-type", fields=[("with", [c.boundjid.bare])], form_type="urn:example:bogus")
    await c.mam("unknown-field", fields=[("bogus-field", ["x"])])
    await c.mam("bad-start", fields=[("start", ["not-a-date"])])
    await c.mam("after-id-unknown", fields=[("after-id", [unknown])])
    await c.mam("rsm-after-unknown", rsm=[("after", unknown)])
    big = await c.mam("max-100000", rsm=[("max", 100000)], report=False)
    big_results = big.pop("results")
    big["result_ids_head"] = [r["result_id"] for r in big_results[:5]]
    out(**big)
    for who in (c, p):
        if who:
            await who.close()


async def send_acked(c, to, ids, text):
    """Send one chat message per id and wait (up to 30 s) until the
    server's <a h/> covers them all; report whether it did."""
    p = c["xep_0198"]
    # slixmpp counts a stanza (seq) when it leaves its send queue, so the
    # target is fixed before sending: every message must be sent and acked.
    target = p.seq + len(ids)
    for mid in ids:
        c.chat(to, "%s %s" % (text, mid), mid=mid)
    for _ in range(600):
        if p.seq >= target and p.last_ack >= target:
            break
        await asyncio.sleep(0.05)
        if p.seq >= target:
            p.request_ack()
    return p.last_ack >= target


async def burst(port, jid, pw, peer, n):
    """Send n messages to peer with stream management and stop once the
    server's <a h/> covers them all (acked = archived, on Annals). The
    process then exits without closing its stream."""
    c = Client(jid, pw, "burst", "client")
    await c.login(port)
    await asyncio.sleep(0.3)
    tag = rand()
    ids = ["b%d-%s" % (i, tag) for i in range(int(n))]
    ok = await send_acked(c, peer, ids, "burst")
    p = c["xep_0198"]
    out(event="acked", who="client", ok=ok, ids=ids, last_ack=p.last_ack, seq=p.seq,
        stream_id=c.bound_stream_id, expected=["%s:%s" % (c.bound_stream_id, i) for i in ids])


async def count(port, jid, pw, with_jid):
    """Page through the archive's conversation with with_jid; report how
    often each message id is there and under which archive IDs."""
    c = Client(jid, pw, "count", "client", sm=False)
    await c.login(port)
    counts, result_ids, after, pages = {}, [], None, 0
    while pages < 100:
        rsm = [("max", 250)] + ([("after", after)] if after else [])
        fact = await c.mam("page", fields=[("with", [with_jid])], rsm=rsm, report=False)
        if not fact["ok"]:
            out(**fact)
            break
        for r in fact["results"]:
            counts[r["id"]] = counts.get(r["id"], 0) + 1
            result_ids.append(r["result_id"])
        pages += 1
        if not fact["results"] or (fact.get("fin") or {}).get("complete") == "true":
            break
        after = fact["fin"]["last"]
    out(event="archive-count", who=jid, counts=counts, result_ids=result_ids, pages=pages)
    c.disconnect()
    await asyncio.sleep(0.2)


SCENARIOS = {"fork": (fork, 4), "resume": (resume, 4), "offline": (offline, 4), "mam-bad": (mam_bad, 2),
             "burst": (burst, 4), "count": (count, 3)}


if __name__ == "__main__":
    run(SCENARIOS, "slix_chat.py", 120)
