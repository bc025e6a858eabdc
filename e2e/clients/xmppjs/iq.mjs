// IQs between two accounts' xmpp.js clients, full JID to full JID: each
// answers software version (XEP-0092) and ping (XEP-0199) itself.
//
// Usage: node iq.mjs PORT between A_JID PW B_JID PW
//
// Facts: "version" and "ping" for each direction (ok, what came back, who
// answered) and "offline" for an IQ to a resource that is not connected.
// One JSON object per line on stdout: facts, not verdicts.
import { client, xml, jid as parseJid } from "@xmpp/client";
import { Fatal, out, runMain, withTimeout } from "./common.mjs";

const NS_VERSION = "jabber:iq:version";
const NS_PING = "urn:xmpp:ping";

function makeClient(port, jidStr, password, resource, label) {
  const j = parseJid(jidStr);
  const c = client({ service: `xmpp://127.0.0.1:${port}`, domain: j.domain, username: j.local, password, resource });
  c.reconnect.stop();
  c.on("error", () => {});
  c.iqCallee.get(NS_VERSION, "query", () =>
    xml("query", { xmlns: NS_VERSION }, xml("name", {}, `xmppjs-${label}`), xml("version", {}, "1")),
  );
  c.iqCallee.get(NS_PING, "ping", () => ({}));
  return { c, label };
}

async function ask(from, to, kind) {
  const payload = kind === "version" ? xml("query", { xmlns: NS_VERSION }) : xml("ping", { xmlns: NS_PING });
  try {
    const resp = await from.c.iqCaller.request(xml("iq", { type: "get", to }, payload), 10000);
    const fact = { event: kind, who: from.label, to, ok: true, sender: resp.attrs.from ?? null };
    if (kind === "version") fact.name = resp.getChild("query", NS_VERSION)?.getChildText("name") ?? null;
    out(fact);
  } catch (err) {
    out({ event: kind, who: from.label, to, ok: false, error: err?.condition ?? String(err?.message ?? err) });
  }
}

async function between(port, aJid, aPw, bJid, bPw) {
  const a = makeClient(port, aJid, aPw, "desk", "a");
  const b = makeClient(port, bJid, bPw, "phone", "b");
  for (const x of [a, b]) {
    try {
      await withTimeout(x.c.start(), 20000, `${x.label}: login`);
    } catch (err) {
      throw new Fatal(`${x.label}: login failed: ${err?.message ?? err}`);
    }
  }
  for (const [x, y] of [[a, b], [b, a]]) {
    const to = y.c.jid.toString();
    await ask(x, to, "version");
    await ask(x, to, "ping");
  }
  try {
    await a.c.iqCaller.request(xml("iq", { type: "get", to: `${parseJid(bJid).bare()}/nowhere` }, xml("ping", { xmlns: NS_PING })), 10000);
    out({ event: "offline", ok: true });
  } catch (err) {
    out({ event: "offline", ok: false, error: err?.condition ?? String(err?.message ?? err) });
  }
  await Promise.all([a, b].map((x) => x.c.stop().catch(() => {})));
}

runMain({ between: [between, 4] }, "iq.mjs", 60000);
