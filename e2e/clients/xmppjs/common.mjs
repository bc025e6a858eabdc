// Helpers the xmpp.js drivers share: the loopback TLS exception, JSON
// fact lines, timeouts and the stanza parts the tests read.
import tls from "node:tls";
import { randomBytes } from "node:crypto";

const NS_SID = "urn:xmpp:sid:0";
const NS_FORWARD = "urn:xmpp:forward:0";
const NS_DELAY = "urn:xmpp:delay";

// The test server's certificate is self-signed: accept it on 127.0.0.1
// only (@xmpp/client passes no TLS options through STARTTLS).
const tlsConnect = tls.connect;
tls.connect = function (options, ...rest) {
  if (options && typeof options === "object" && options.socket?.remoteAddress === "127.0.0.1") {
    options = { ...options, rejectUnauthorized: false };
  }
  return tlsConnect.call(this, options, ...rest);
};

export class Fatal extends Error {}

// serviceOf is @xmpp/client's service for a port on 127.0.0.1 (TCP) or a
// WebSocket URL (RFC 7395).
export const serviceOf = (port) => (typeof port === "string" ? port : `xmpp://127.0.0.1:${port}`);

export const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
export const rand = () => randomBytes(4).toString("hex");
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export function withTimeout(p, ms, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Fatal(`${what}: timed out`)), ms);
    }),
  ]);
}

export function stanzaIds(el) {
  return el.getChildren("stanza-id", NS_SID).map((s) => ({ by: s.attrs.by ?? null, id: s.attrs.id ?? null }));
}

export function delayOf(el) {
  const d = el?.getChild("delay", NS_DELAY);
  return d ? { stamp: d.attrs.stamp ?? null, from: d.attrs.from ?? null } : null;
}

export function innerMessage(wrapper) {
  const fwd = wrapper.getChild("forwarded", NS_FORWARD);
  if (!fwd) return [null, null];
  return [fwd, fwd.getChildElements().find((c) => c.name === "message") ?? null];
}

// runMain runs the scenario named on the command line (PORT SCENARIO
// ARGS...) and exits 0, or 1 with a message when it could not run. PORT
// may be a WebSocket URL (ws://…/xmpp-websocket) instead: serviceOf
// makes either the client's service.
export function runMain(scenarios, prog, ms) {
  const [portArg, scenario, ...args] = process.argv.slice(2);
  const entry = scenarios[scenario];
  const run = async () => {
    if (!portArg || !entry || args.length < entry[1]) {
      throw new Fatal(`usage: node ${prog} PORT|WS-URL {${Object.keys(scenarios).join("|")}} ARGS...`);
    }
    await withTimeout(entry[0](/^wss?:/.test(portArg) ? portArg : Number(portArg), ...args), ms, scenario);
  };
  run().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`${err instanceof Fatal ? err.message : err?.stack ?? err}\n`);
      process.exit(1);
    },
  );
}

// quietDown waits until size() (what the clients received so far) has not
// grown for quietMs, at most capMs.
export async function quietDown(size, quietMs = 1500, capMs = 10000) {
  let last = -1;
  let still = 0;
  for (let waited = 0; waited < capMs; waited += 250) {
    const n = size();
    if (n === last) {
      still += 250;
      if (still >= quietMs) return;
    } else {
      last = n;
      still = 0;
    }
    await sleep(250);
  }
}
