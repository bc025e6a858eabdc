#!/usr/bin/python3
"""IQs between two accounts' clients, full JID to full JID, with slixmpp
answering its own disco#info (XEP-0030), software version (XEP-0092) and
ping (XEP-0199).

Usage: slix_iq.py PORT SCENARIO ARGS...

  between  A_JID PW B_JID PW

Facts: "disco", "version", "ping" for each direction (ok, what came
back), and "offline" for an IQ to a resource that is not connected (the
error condition). One JSON object per line on stdout: facts, not verdicts.
"""
import asyncio

from slixmpp.exceptions import IqError, IqTimeout

from common import out, run
from slix_chat import Client


def error_condition(e):
    return e.iq["error"]["condition"] if isinstance(e, IqError) else "timeout"


async def between(port, ajid, apw, bjid, bpw):
    a = Client(ajid, apw, "desk", "a", sm=False)
    b = Client(bjid, bpw, "phone", "b", sm=False)
    for c in (a, b):
        c.register_plugin("xep_0092", pconfig={"software_name": "client-" + c.label, "version": "1"})
        c.register_plugin("xep_0199")
    await a.login(port)
    await b.login(port)
    for x, y in ((a, b), (b, a)):
        to = y.boundjid.full
        try:
            info = await x["xep_0030"].get_info(jid=to, timeout=10)
            out(event="disco", who=x.label, to=to, ok=True, sender=str(info["from"]),
                features=list(info["disco_info"]["features"]))
        except (IqError, IqTimeout) as e:
            out(event="disco", who=x.label, to=to, ok=False, error=error_condition(e))
        try:
            v = await x["xep_0092"].get_version(to, timeout=10)
            out(event="version", who=x.label, to=to, ok=True, name=v["software_version"]["name"])
        except (IqError, IqTimeout) as e:
            out(event="version", who=x.label, to=to, ok=False, error=error_condition(e))
        try:
            rtt = await x["xep_0199"].ping(to, timeout=10)
            out(event="ping", who=x.label, to=to, ok=True, rtt=rtt)
        except (IqError, IqTimeout) as e:
            out(event="ping", who=x.label, to=to, ok=False, error=error_condition(e))
    nowhere = b.boundjid.bare + "/nowhere"
    try:
        await a["xep_0030"].get_info(jid=nowhere, timeout=10)
        out(event="offline", ok=True)
    except (IqError, IqTimeout) as e:
        out(event="offline", ok=False, error=error_condition(e))
    await a.close()
    await b.close()


SCENARIOS = {"between": (between, 4)}

if __name__ == "__main__":
    run(SCENARIOS, "slix_iq.py", 90)
