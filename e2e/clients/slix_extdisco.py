"""External Service Discovery (XEP-0215) with slixmpp: Debian's slixmpp
has no plugin for it, so the IQs are built by hand, as Conversations and
Dino send them.

usage: slix_extdisco.py ADDR PASSWORD ALICE SECRET_FILE [OTHER_DOMAIN]

alice asks the server's disco#info, every external service, the TURN
ones only, credentials at one relay and at one that is not there; with
OTHER_DOMAIN, the services of that other server too. Each
service's password is checked here against HMAC-SHA1 computed in
Python with the secret from SECRET_FILE. Prints one JSON fact per
answer.
"""
import asyncio
import base64
import datetime
import hashlib
import hmac
import ssl
import sys
import time
import xml.etree.ElementTree as ET

import slixmpp
from slixmpp.exceptions import IqError, IqTimeout

from common import error_fact, local, out

NS = "urn:xmpp:extdisco:2"


class Client(slixmpp.ClientXMPP):
    def __init__(self, addr, jid, password):
        super().__init__(jid, password)
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.register_plugin("xep_0030")
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))

    async def login(self):
        self.connect(address=self.addr)
        await asyncio.wait_for(self.started, 20)
        return self


def service_fact(el, secret):
    """A <service/>'s attributes, and whether its password is the
    HMAC-SHA1 of its username under the secret (TURN REST)."""
    f = dict(el.attrib)
    if "username" in f:
        want = base64.b64encode(hmac.new(secret, f["username"].encode(), hashlib.sha1).digest()).decode()
        f["password_ok"] = f.get("password") == want
        expiry, _, who = f["username"].partition(":")
        f["username_expiry"] = int(expiry)
        f["username_jid"] = who
    if "expires" in f:
        f["expires_unix"] = int(datetime.datetime.fromisoformat(f["expires"].replace("Z", "+00:00")).timestamp())
    return f


async def ask(c, what, payload, secret, to=None):
    iq = c.make_iq_get(ito=to or c.boundjid.domain)
    iq.append(ET.fromstring(payload))
    asked = time.time()
    try:
        r = await iq.send(timeout=15)
        answer = next(iter(r.xml), None)
        services = [service_fact(s, secret) for s in answer if local(s.tag) == "service"] if answer is not None else []
        out(event="extdisco", what=what, asked_at=asked, answer=local(answer.tag) if answer is not None else None, services=services)
    except IqError as e:
        out(event="extdisco", what=what, error=error_fact(e))
    except IqTimeout:
        out(event="extdisco", what=what, error={"condition": "timeout"})


async def main(addr, password, alice_jid, secret_file, other=None):
    with open(secret_file, "rb") as f:
        secret = f.read().rstrip(b"\r\n")
    alice = await Client(addr, alice_jid + "/desk", password).login()
    info = await alice["xep_0030"].get_info(jid=alice.boundjid.domain, timeout=15)
    out(event="disco", features=sorted(info["disco_info"]["features"]))
    await ask(alice, "all", "<services xmlns='%s'/>" % NS, secret)
    await ask(alice, "turn", "<services xmlns='%s' type='turn'/>" % NS, secret)
    await ask(alice, "credentials", "<credentials xmlns='%s'><service type='turns' host='turn.example.org'/></credentials>" % NS, secret)
    await ask(alice, "unknown", "<credentials xmlns='%s'><service type='turn' host='relay.example.net'/></credentials>" % NS, secret)
    if other:
        await ask(alice, "other-server", "<services xmlns='%s'/>" % NS, secret, to=other)
    alice.disconnect()
    await asyncio.sleep(0.3)


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit(__doc__)
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        loop.run_until_complete(asyncio.wait_for(main(*sys.argv[1:]), 90))
    except asyncio.TimeoutError:
        sys.exit("timed out")
