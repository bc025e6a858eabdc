"""HTTP File Upload (XEP-0363) with slixmpp's own xep_0363 plugin.

usage: slix_upload.py ADDR CERT PASSWORD ALICE BOB FILE

CERT is the server's certificate, trusted for the HTTPS URLs (aiohttp,
which the plugin uploads with, checks it). alice finds the upload service
(disco#items, then disco#info on each item), uploads FILE with the
plugin (its discovery done by hand: see discover) and sends its URL to bob; bob downloads it with his own HTTP
client; alice then asks for a slot one byte over the limit the service
advertised. Prints one JSON fact per step.
"""
import os
import sys

os.environ["SSL_CERT_FILE"] = sys.argv[2] if len(sys.argv) > 2 else ""

import asyncio
import hashlib
import ssl
from pathlib import Path

import aiohttp
import slixmpp
from slixmpp.exceptions import IqError

from common import error_fact, local, main_of, out

NS = "urn:xmpp:http:upload:0"


class Client(slixmpp.ClientXMPP):
    def __init__(self, addr, jid, password):
        super().__init__(jid, password)
        host, port = addr.rsplit(":", 1)
        self.addr = (host, int(port))
        self.ssl_context.check_hostname = False
        self.ssl_context.verify_mode = ssl.CERT_NONE
        self.register_plugin("xep_0030")
        self.register_plugin("xep_0363")
        self.messages = asyncio.Queue()
        self.started = asyncio.get_event_loop().create_future()
        self.add_event_handler("session_start", lambda _: self.started.done() or self.started.set_result(True))
        self.add_event_handler("message", lambda m: self.messages.put_nowait(m))

    async def login(self):
        self.connect(address=self.addr)
        await asyncio.wait_for(self.started, 20)
        self.send_presence()
        return self


async def discover(c):
    """What the plugin's find_upload_service does: disco#items on the
    server, disco#info on each item, the one that is a store/file with
    the feature; and the max-file-size of its form. Debian's slixmpp
    1.8.3 cannot run its own on Python 3.11 (get_info_from_domain hands
    asyncio.wait coroutines: TypeError)."""
    disco = c["xep_0030"]
    items = await disco.get_items(jid=c.boundjid.domain, timeout=15)
    found = []
    for jid, _, _ in items["disco_items"]["items"]:
        info = await disco.get_info(jid=jid, timeout=15)
        di = info["disco_info"]
        if any(i[0] == "store" and i[1] == "file" for i in di["identities"]) and NS in di["features"]:
            found.append(info)
    if len(found) != 1:
        raise SystemExit("%d upload services" % len(found))
    up = c["xep_0363"]
    up.upload_service = found[0]["from"]
    for form in found[0]["disco_info"].iterables:
        values = form["values"]
        if values["FORM_TYPE"] == [NS]:
            up.max_file_size = int(values["max-file-size"])
    out(event="discovered", service=str(up.upload_service), max_file_size=up.max_file_size)


async def main(addr, cert, password, alice_jid, bob_jid, path):
    alice = await Client(addr, alice_jid + "/desk", password).login()
    bob = await Client(addr, bob_jid + "/phone", password).login()
    up = alice["xep_0363"]
    await discover(alice)
    url = await up.upload_file(Path(path), domain=slixmpp.JID(alice.boundjid.domain), timeout=30)
    out(event="uploaded", url=url, service=str(up.upload_service), max_file_size=up.max_file_size)

    alice.send_message(mto=bob_jid, mbody=url, mtype="chat")
    msg = await asyncio.wait_for(bob.messages.get(), 15)
    async with aiohttp.ClientSession() as http:
        async with http.get(msg["body"]) as r:
            body = await r.read()
            out(event="downloaded", status=r.status, sha256=hashlib.sha256(body).hexdigest(), length=len(body),
                headers={k: r.headers.get(k) for k in ("Content-Type", "Content-Length", "Content-Disposition",
                                                       "X-Content-Type-Options", "Access-Control-Allow-Origin")})

    # The plugin checks the advertised limit before asking: the request
    # is sent by hand, as a client that did not look would send it.
    try:
        await up.request_slot(up.upload_service, "big.bin", int(up.max_file_size) + 1, "application/octet-stream", timeout=15)
        out(event="too-large", granted=True)
    except IqError as e:
        err = e.iq.xml.find("{jabber:client}error")
        ftl = err.find("{%s}file-too-large" % NS) if err is not None else None
        mfs = ftl.find("{%s}max-file-size" % NS) if ftl is not None else None
        out(event="too-large", error=error_fact(e), max_file_size=mfs.text if mfs is not None else None)
    alice.disconnect()
    bob.disconnect()
    await asyncio.sleep(0.3)


if __name__ == "__main__":
    main_of(main, 6, __doc__, 90)
