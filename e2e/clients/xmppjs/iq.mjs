// IQs between two accounts' xmpp.js clients, full JID to full JID. xmpp.js
// has no disco, caps or in-band bytestream plugin: each client answers
// disco#info (XEP-0030), software version (XEP-0092), ping (XEP-0199) and
// in-band bytestreams (XEP-0047) itself, with the IQ handlers below, and
// announces its entity capabilities (XEP-0115) by hand.
//
// Usage: node iq.mjs PORT between A_JID PW B_JID PW
//        node iq.mjs PORT answer B_JID PW   (with slix_iq.py mixed)
//
// Facts, as slix_iq.py prints them: "subscription" for the earlier
// clients that make the accounts contacts; "disco", "version", "ping",
// "ibb" and "ibb-received" for each direction; "offline" for an IQ to a
// resource that is not connected (condition, type and the error's from);
// "caps-presence", "caps-info" and "caps-asked" for the entity
// capabilities lookups. One JSON object per line on stdout: facts, not
// verdicts.
import { createHash, randomBytes } from "node:crypto";
import { client, xml, jid as parseJid } from "@xmpp/client";
import { Fatal, out, rand, runMain, sleep, withTimeout, serviceOf } from "./common.mjs";

const NS_VERSION = "jabber:iq:version";
const NS_PING = "urn:xmpp:ping";
const NS_DISCO = "http://jabber.org/protocol/disco#info";
const NS_CAPS = "http://jabber.org/protocol/caps";
const NS_IBB = "http://jabber.org/protocol/ibb";
const NS_DATA = "jabber:x:data";
const NS_STANZAS = "urn:ietf:params:xml:ns:xmpp-stanzas";
const CAPS_NODE = "https://annals.im/e2e/xmppjs";
const FEATURES = [NS_DISCO, NS_CAPS, NS_IBB, NS_PING, NS_VERSION];
const IBB_SIZE = 20 * 1024;
const IBB_BLOCK = 4096;
const IBB_MAX_BLOCK = 8192;

const sha256 = (b) => createHash("sha256").update(b).digest("hex");
const stanzaError = (type, condition) => xml("error", { type }, xml(condition, NS_STANZAS));

// capsVer is the verification string of XEP-0115 §5.1 for identities and
// features (no extended forms: these clients have none). The client
// computes it to announce it; the Go test recomputes it independently from
// what the other client answered.
function capsVer(identities, features) {
  const ids = identities.map((i) => `${i.category}/${i.type}/${i.lang ?? ""}/${i.name ?? ""}<`).sort();
  const s = ids.join("") + [...features].sort().map((f) => `${f}<`).join("");
  return createHash("sha1").update(s, "utf8").digest("base64");
}

function makeClient(port, jidStr, password, resource, label) {
  const j = parseJid(jidStr);
  const c = client({ service: serviceOf(port), domain: j.domain, username: j.local, password, resource });
  c.reconnect.stop();
  c.on("error", () => {});
  const x = {
    c,
    label,
    identity: { category: "client", type: "pc", name: `annals-e2e-xmppjs-${label}` },
    ibbIn: new Map(), // sid -> a stream the other opened
    capsSeen: new Map(), // full JID -> the caps in its last presence
    capsAsked: [], // disco#info lookups with a node this client answered
    errors: new Map(), // id -> error IQ received (xmpp.js keeps only the error element)
    subscribedTo: new Set(),
    roster: new Map(), // bare JID -> subscription, from the server's roster pushes
  };
  x.ver = capsVer([x.identity], FEATURES);

  c.iqCallee.get(NS_VERSION, "query", () =>
    xml("query", { xmlns: NS_VERSION }, xml("name", {}, `xmppjs-${label}`), xml("version", {}, "1")),
  );
  c.iqCallee.get(NS_PING, "ping", () => ({}));
  c.iqCallee.get(NS_DISCO, "query", (ctx) => {
    const node = ctx.element.attrs.node;
    if (node !== undefined) {
      x.capsAsked.push({ from: ctx.stanza.attrs.from ?? null, node });
      if (node !== `${CAPS_NODE}#${x.ver}`) return stanzaError("cancel", "item-not-found");
    }
    const { category, type, name } = x.identity;
    return xml(
      "query",
      node === undefined ? { xmlns: NS_DISCO } : { xmlns: NS_DISCO, node },
      xml("identity", { category, type, name }),
      ...FEATURES.map((f) => xml("feature", { var: f })),
    );
  });
  // XEP-0047 receiving side, over IQs only (§2.1 open, §2.2 data, §2.3 close).
  c.iqCallee.set(NS_IBB, "open", (ctx) => {
    const { sid, stanza } = ctx.element.attrs;
    const blockSize = Number(ctx.element.attrs["block-size"]);
    if (!sid || !(blockSize > 0)) return stanzaError("modify", "bad-request");
    if (stanza === "message") return stanzaError("cancel", "feature-not-implemented");
    if (blockSize > IBB_MAX_BLOCK) return stanzaError("modify", "resource-constraint");
    x.ibbIn.set(sid, { from: ctx.stanza.attrs.from, blockSize, seq: -1, chunks: [], closed: false });
    return {};
  });
  c.iqCallee.set(NS_IBB, "data", (ctx) => {
    const s = x.ibbIn.get(ctx.element.attrs.sid);
    if (!s || s.closed || s.from !== ctx.stanza.attrs.from) return stanzaError("cancel", "item-not-found");
    const seq = Number(ctx.element.attrs.seq);
    if (seq !== (s.seq + 1) % 65536) return stanzaError("cancel", "unexpected-request");
    const b = Buffer.from(ctx.element.text(), "base64");
    if (b.length > s.blockSize) return stanzaError("modify", "bad-request");
    s.seq = seq;
    s.chunks.push(b);
    return {};
  });
  c.iqCallee.set(NS_IBB, "close", (ctx) => {
    const s = x.ibbIn.get(ctx.element.attrs.sid);
    if (!s || s.from !== ctx.stanza.attrs.from) return stanzaError("cancel", "item-not-found");
    s.closed = true;
    return {};
  });

  // Roster pushes (RFC 6121 §2.1.6), which the server sends as the
  // subscription changes.
  c.iqCallee.set("jabber:iq:roster", "query", (ctx) => {
    if (ctx.stanza.attrs.from && ctx.stanza.attrs.from !== c.jid.bare().toString()) return stanzaError("cancel", "service-unavailable");
    for (const item of ctx.element.getChildren("item")) x.roster.set(item.attrs.jid, item.attrs.subscription ?? "none");
    return {};
  });
  c.on("stanza", (el) => {
    const from = el.attrs.from ?? "";
    if (el.is("iq") && el.attrs.type === "error") {
      x.errors.set(el.attrs.id, el);
    } else if (el.is("presence") && !el.attrs.type) {
      const caps = el.getChild("c", NS_CAPS);
      if (caps) x.capsSeen.set(from, { node: caps.attrs.node ?? null, hash: caps.attrs.hash ?? null, ver: caps.attrs.ver ?? null });
    } else if (el.is("presence") && el.attrs.type === "subscribe") {
      // Approve, and ask back, as a client set to accept its contacts does.
      const bare = parseJid(from).bare().toString();
      c.send(xml("presence", { to: bare, type: "subscribed" }));
      if (!x.subscribedTo.has(bare)) {
        x.subscribedTo.add(bare);
        c.send(xml("presence", { to: bare, type: "subscribe" }));
      }
    }
  });
  return x;
}

// request sends an IQ and returns the result, or throws the error with the
// error IQ's from and type added.
async function request(x, iq, ms = 10000) {
  iq.attrs.id ??= `${x.label}-${rand()}`;
  try {
    return await x.c.iqCaller.request(iq, ms);
  } catch (err) {
    const el = x.errors.get(iq.attrs.id);
    throw Object.assign(err, { sender: el?.attrs.from ?? null, errorType: el?.getChild("error")?.attrs.type ?? null });
  }
}

const errorFields = (err) => ({
  error: err?.condition ?? String(err?.message ?? err),
  error_type: err?.errorType ?? null,
  sender: err?.sender ?? null,
});

function identitiesOf(q) {
  return q.getChildren("identity").map((i) => [i.attrs.category ?? "", i.attrs.type ?? "", i.attrs["xml:lang"] ?? "", i.attrs.name ?? ""]);
}

async function ask(x, to, kind) {
  const payload = {
    disco: xml("query", { xmlns: NS_DISCO }),
    version: xml("query", { xmlns: NS_VERSION }),
    ping: xml("ping", { xmlns: NS_PING }),
  }[kind];
  const fact = { event: kind, who: x.label, to };
  try {
    const resp = await request(x, xml("iq", { type: "get", to }, payload));
    Object.assign(fact, { ok: true, sender: resp.attrs.from ?? null });
    if (kind === "version") fact.name = resp.getChild("query", NS_VERSION)?.getChildText("name") ?? null;
    if (kind === "disco") fact.features = (resp.getChild("query", NS_DISCO)?.getChildren("feature") ?? []).map((f) => f.attrs.var).sort();
  } catch (err) {
    Object.assign(fact, { ok: false }, errorFields(err));
  }
  out(fact);
}

// ibb: x sends full JID to IBB_SIZE random bytes in IBB_BLOCK-byte
// blocks over an in-band bytestream carried in IQs: open, data..., close.
// It returns the stream's id.
async function ibb(x, to) {
  const data = randomBytes(IBB_SIZE);
  const sid = `ibb-${rand()}`;
  const fact = { event: "ibb", who: x.label, to, sid, size: data.length, sha256: sha256(data), block_size: IBB_BLOCK };
  try {
    const opened = await request(x, xml("iq", { type: "set", to }, xml("open", { xmlns: NS_IBB, sid, "block-size": String(IBB_BLOCK), stanza: "iq" })));
    for (let seq = 0, off = 0; off < data.length; seq++, off += IBB_BLOCK) {
      const block = data.subarray(off, off + IBB_BLOCK).toString("base64");
      await request(x, xml("iq", { type: "set", to }, xml("data", { xmlns: NS_IBB, sid, seq: String(seq % 65536) }, block)));
    }
    await request(x, xml("iq", { type: "set", to }, xml("close", { xmlns: NS_IBB, sid })));
    Object.assign(fact, { ok: true, sender: opened.attrs.from ?? null });
  } catch (err) {
    Object.assign(fact, { ok: false }, errorFields(err));
  }
  out(fact);
  return sid;
}

// ibbReceived prints what y received on stream sid.
function ibbReceived(y, sid) {
  const s = y.ibbIn.get(sid);
  const got = { event: "ibb-received", who: y.label, sid };
  if (!s) {
    out({ ...got, ok: false, error: "no stream was opened" });
  } else if (!s.closed) {
    out({ ...got, ok: false, error: "the stream was not closed", sender: s.from, chunks: s.chunks.length });
  } else {
    const b = Buffer.concat(s.chunks);
    out({ ...got, ok: true, sender: s.from, size: b.length, sha256: sha256(b), chunks: s.chunks.length });
  }
}

async function offline(x, to) {
  try {
    await request(x, xml("iq", { type: "get", to }, xml("ping", { xmlns: NS_PING })), 5000);
    out({ event: "offline", who: x.label, to, ok: true });
  } catch (err) {
    out({ event: "offline", who: x.label, to, ok: false, ...errorFields(err) });
  }
}

// caps: what x learnt of full JID peer's entity capabilities: the c
// element of its presence, then its answer to disco#info of node#ver, as
// a client that has not seen that hash before asks it (XEP-0115 §6.2).
async function caps(x, peer) {
  for (let i = 0; i < 40 && !x.capsSeen.has(peer); i++) await sleep(100);
  const seen = x.capsSeen.get(peer) ?? null;
  out({ event: "caps-presence", who: x.label, sender: peer, caps: seen });
  if (!seen) return;
  const node = `${seen.node}#${seen.ver}`;
  const fact = { event: "caps-info", who: x.label, to: peer, node };
  try {
    const resp = await request(x, xml("iq", { type: "get", to: peer }, xml("query", { xmlns: NS_DISCO, node })));
    const q = resp.getChild("query", NS_DISCO);
    Object.assign(fact, {
      ok: true,
      sender: resp.attrs.from ?? null,
      answer_node: q?.attrs.node ?? null,
      identities: q ? identitiesOf(q) : [],
      features: (q?.getChildren("feature") ?? []).map((f) => f.attrs.var),
      forms: q?.getChildren("x", NS_DATA).length ?? 0,
    });
  } catch (err) {
    Object.assign(fact, { ok: false }, errorFields(err));
  }
  out(fact);
}

async function login(x) {
  try {
    await withTimeout(x.c.start(), 20000, `${x.label}: login`);
  } catch (err) {
    throw new Fatal(`${x.label}: login failed: ${err?.message ?? err}`);
  }
}

// subscribe makes x's and y's accounts contacts both ways: x asks, and the
// clients approve (and ask back) as the presence handler above does.
async function subscribe(x, y) {
  const yBare = y.c.jid.bare().toString();
  const xBare = x.c.jid.bare().toString();
  x.subscribedTo.add(yBare);
  await x.c.send(xml("presence", { to: yBare, type: "subscribe" }));
  for (let i = 0; i < 50 && !(x.roster.get(yBare) === "both" && y.roster.get(xBare) === "both"); i++) await sleep(100);
  out({ event: "subscription", who: x.label, contact: yBare, subscription: x.roster.get(yBare) ?? "none" });
  out({ event: "subscription", who: y.label, contact: xBare, subscription: y.roster.get(xBare) ?? "none" });
}

async function between(port, aJid, aPw, bJid, bPw) {
  // Earlier clients of both accounts make them contacts, then leave:
  // juliet's is the resource no longer connected.
  const first = makeClient(port, aJid, aPw, "laptop", "a-first");
  const gone = makeClient(port, bJid, bPw, "tablet", "b-gone");
  await login(first);
  await login(gone);
  await subscribe(first, gone);
  await Promise.all([first, gone].map((x) => x.c.stop()));
  const a = makeClient(port, aJid, aPw, "desk", "a");
  const b = makeClient(port, bJid, bPw, "phone", "b");
  await login(a);
  await login(b);
  for (const [x, y] of [[a, b], [b, a]]) {
    const to = y.c.jid.toString();
    for (const kind of ["disco", "version", "ping"]) await ask(x, to, kind);
    ibbReceived(y, await ibb(x, to));
  }
  await offline(a, gone.c.jid.toString());
  await offline(b, `${a.c.jid.bare()}/nowhere`);
  // Entity capabilities, as at login: each client announces its hash in
  // its initial presence. b learns a's from the server's answer to its
  // own initial presence (the probe), a learns b's from b's broadcast to
  // its contacts.
  const initial = (x) => xml("presence", {}, xml("c", { xmlns: NS_CAPS, hash: "sha-1", node: CAPS_NODE, ver: x.ver }));
  await a.c.send(initial(a));
  for (let i = 0; i < 50 && !a.capsSeen.has(a.c.jid.toString()); i++) await sleep(100); // the server's echo
  await b.c.send(initial(b));
  for (const [x, y] of [[a, b], [b, a]]) await caps(x, y.c.jid.toString());
  for (const x of [a, b]) out({ event: "caps-asked", who: x.label, asked: x.capsAsked });
  await Promise.all([a, b].map((x) => x.c.stop().catch(() => {})));
}

// answer: b logs in and announces its caps, says it is ready, and answers
// until a client of another library (slix_iq.py mixed), a contact, tells
// it "your turn" in a chat message; then it asks that client everything
// in turn and says "done".
async function answer(port, bJid, bPw) {
  const b = makeClient(port, bJid, bPw, "phone", "b");
  let turn;
  const asker = new Promise((resolve) => (turn = resolve));
  b.c.on("stanza", (el) => {
    if (el.is("message") && el.getChildText("body") === "your turn") turn(el.attrs.from);
  });
  await login(b);
  await b.c.send(xml("presence", {}, xml("c", { xmlns: NS_CAPS, hash: "sha-1", node: CAPS_NODE, ver: b.ver })));
  out({ event: "ready", who: b.label, jid: b.c.jid.toString() });
  const peer = await withTimeout(asker, 30000, "waiting for the other client's turn");
  for (const kind of ["disco", "version", "ping"]) await ask(b, peer, kind);
  await ibb(b, peer);
  await caps(b, peer);
  for (const sid of b.ibbIn.keys()) ibbReceived(b, sid);
  out({ event: "caps-asked", who: b.label, asked: b.capsAsked });
  await b.c.send(xml("message", { to: peer, type: "chat" }, xml("body", {}, "done")));
  await b.c.stop().catch(() => {});
}

runMain({ between: [between, 4], answer: [answer, 2] }, "iq.mjs", 60000);
