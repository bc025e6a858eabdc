// Drive Converse.js, served from a local page, in Debian's chromium
// (headless, through puppeteer-core, which downloads no browser): log in
// over WebSocket, send a chat message by typing it, wait for the peer's
// reply in the page, open a room and read its history from the page,
// upload a file through the chat toolbar's file input (XEP-0363), and
// take screenshots.
//
// Usage: node converse.mjs SETTINGS_JSON
//
//   SETTINGS_JSON: {"page", "websocket", "jid", "password", "peer",
//   "message", "reply", "room", "nick", "history": [...], "file",
//   "outdir", "spki"?, "chromium"?}
//
// Prints one JSON object per line on stdout: facts, not verdicts
// (websocket, login, sent, chat, room, upload, screenshot, page-errors).
// Exits 0 when the scenario ran, 1 (message on stderr) when it could not.
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";

class Fatal extends Error {}

const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");
const STEP_MS = 30000;

// messagesIn reads the messages Converse shows in the chat or room view
// whose jid attribute is jid: who sent each (data-from), its text, and the
// links and images in it.
function messagesIn(page, tag, jid) {
  return page.evaluate(
    (tag, jid) => {
      const view = document.querySelector(`${tag}[jid="${jid}"]`);
      if (!view) return null;
      return [...view.querySelectorAll(".message.chat-msg")].map((m) => ({
        from: m.getAttribute("data-from"),
        // Converse shows a message under the one before when it takes it
        // for that sender's next (its own grouping).
        followup: m.classList.contains("chat-msg--followup"),
        text: m.querySelector(".chat-msg__text")?.textContent.trim() ?? "",
        links: [...m.querySelectorAll("a[href]")].map((a) => a.href),
        images: [...m.querySelectorAll("img")]
          .filter((i) => !i.closest(".chat-msg__avatar, converse-avatar"))
          .map((i) => ({ src: i.src, loaded: i.complete && i.naturalWidth > 0 })),
      }));
    },
    tag,
    jid,
  );
}

// waitMessages polls messagesIn until ok(messages) holds, for STEP_MS.
async function waitMessages(page, tag, jid, what, ok) {
  let last = null;
  for (const deadline = Date.now() + STEP_MS; Date.now() < deadline; ) {
    last = await messagesIn(page, tag, jid);
    if (last && ok(last)) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Fatal(`${what}: not in the page after ${STEP_MS} ms; it shows ${JSON.stringify(last)}`);
}

function withTimeout(p, what) {
  let t;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise((_, rej) => {
      t = setTimeout(() => rej(new Fatal(`${what}: timed out after ${STEP_MS} ms`)), STEP_MS);
    }),
  ]);
}

// openChat opens (or brings forward) the chat with jid. It returns nothing
// from the page: Converse's models do not serialize.
function openChat(page, jid) {
  return withTimeout(
    page.evaluate(async (jid) => {
      await window.e2e.api.chats.open(jid, {}, true);
    }, jid),
    `open the chat with ${jid}`,
  );
}

async function main(s) {
  const started = Date.now();
  const ms = () => Date.now() - started;
  const profile = await mkdtemp(path.join(tmpdir(), "annals-chromium-"));
  browser = await puppeteer.launch({
    executablePath: s.chromium || "/usr/bin/chromium",
    headless: true,
    userDataDir: profile,
    // Root (as the tests run) may not use chromium's sandbox; the page is
    // the test's own, on loopback. A TLS server's certificate is the
    // test's own too: its key alone is trusted (spki, the base64 SHA-256
    // of its SubjectPublicKeyInfo; chromium heeds it with a user data
    // directory).
    args: ["--no-sandbox", "--disable-gpu", "--window-size=1280,900",
      ...(s.spki ? [`--ignore-certificate-errors-spki-list=${s.spki}`] : [])],
    defaultViewport: { width: 1280, height: 900 },
  });
  const pageErrors = [];
  const refused = [];
  try {
    const page = await browser.newPage();
    page.on("pageerror", (e) => pageErrors.push(String(e?.message ?? e)));
    page.on("console", (m) => {
      if (m.type() === "error") pageErrors.push(m.text());
    });
    // What went over the wire: the WebSocket the page opened, its
    // subprotocol, and the frames each way.
    const ws = new Map();
    const cdp = await page.createCDPSession();
    await cdp.send("Network.enable");
    cdp.on("Network.webSocketCreated", (e) => ws.set(e.requestId, { url: e.url, protocol: null, status: null, sent: 0, received: 0 }));
    cdp.on("Network.webSocketHandshakeResponseReceived", (e) => {
      const w = ws.get(e.requestId);
      if (!w) return;
      w.status = e.response.status;
      const h = Object.fromEntries(Object.entries(e.response.headers).map(([k, v]) => [k.toLowerCase(), v]));
      w.protocol = h["sec-websocket-protocol"] ?? null;
    });
    cdp.on("Network.webSocketFrameSent", (e) => ws.get(e.requestId) && ws.get(e.requestId).sent++);
    cdp.on("Network.webSocketFrameReceived", (e) => ws.get(e.requestId) && ws.get(e.requestId).received++);

    // Nothing leaves the machine: Converse's control box shows its
    // sponsors' logos from the web; those requests are refused here.
    await page.setRequestInterception(true);
    page.on("request", (r) => {
      const host = new URL(r.url()).hostname;
      if (/^(data|blob):/.test(r.url()) || host === "localhost" || host.startsWith("127.") || host === "[::1]") {
        r.continue();
      } else {
        refused.push(r.url());
        r.abort("blockedbyclient");
      }
    });

    await page.goto(s.page, { waitUntil: "load" });
    await page.evaluate((settings) => window.start(settings), {
      websocket_url: s.websocket,
      // Only the WebSocket named here: no XEP-0156 lookup, no BOSH.
      discover_connection_methods: false,
      auto_login: true,
      jid: s.jid,
      password: s.password,
      view_mode: "fullscreen",
      assets_path: "/dist/",
      i18n: "en",
      loglevel: "warn",
      nickname: s.nick,
      allow_non_roster_messaging: true,
      play_sounds: false,
      show_desktop_notifications: false,
      auto_reconnect: false,
    });
    try {
      await page.waitForFunction(() => window.e2e.events.includes("connected"), { timeout: STEP_MS });
    } catch {
      throw new Fatal(`login: Converse did not connect (events ${JSON.stringify(await page.evaluate(() => window.e2e.events))})`);
    }
    const bound = await page.evaluate(() => window.e2e.api.connection.get().jid);
    out({ event: "login", ok: true, jid: bound, ms: ms() });
    out({ event: "websocket", sockets: [...ws.values()] });

    // The 1:1 chat: open it as the roster's or a chat link's click does,
    // type into its text area and press Enter.
    await openChat(page, s.peer);
    const chat = `converse-chat[jid="${s.peer}"]`;
    const textarea = await page.waitForSelector(`${chat} textarea.chat-textarea`, { timeout: STEP_MS });
    await textarea.type(s.message);
    await page.keyboard.press("Enter");
    out({ event: "sent", to: s.peer, body: s.message, ms: ms() });
    const chatMsgs = await waitMessages(page, "converse-chat", s.peer, "the reply", (msgs) => msgs.some((m) => m.text === s.reply));
    out({ event: "chat", messages: chatMsgs, ms: ms() });

    // The room: open it (join) as the bookmark or room list does, and read
    // what it shows of what was said before.
    await withTimeout(
      page.evaluate(async (room, nick) => {
        await window.e2e.api.rooms.open(room, { nick }, true);
      }, s.room, s.nick),
      "open the room",
    );
    const roomMsgs = await waitMessages(page, "converse-muc", s.room, "the room history", (msgs) =>
      s.history.every((h) => msgs.some((m) => m.text === h)),
    );
    out({ event: "room", jid: s.room, messages: roomMsgs, ms: ms() });
    const roomShot = path.join(s.outdir, "room.png");
    await page.screenshot({ path: roomShot });
    out({ event: "screenshot", what: "room", path: roomShot });

    // The upload: back to the chat, and pick the file in the toolbar's
    // file input (the paperclip's). The input is there only once Converse
    // found an upload service in disco.
    await openChat(page, s.peer);
    const input = await page.waitForSelector(`${chat} input.fileupload`, { timeout: STEP_MS }).catch(() => {
      throw new Fatal("upload: the chat toolbar offers no file upload (no XEP-0363 service found)");
    });
    const before = (await messagesIn(page, "converse-chat", s.peer)).length;
    await input.uploadFile(s.file);
    const name = path.basename(s.file);
    const withFile = await waitMessages(page, "converse-chat", s.peer, "the uploaded file", (msgs) =>
      msgs.slice(before).some((m) => m.links.some((l) => l.endsWith("/" + name)) && m.images.every((i) => i.loaded)),
    );
    const sent = withFile.slice(before).find((m) => m.links.some((l) => l.endsWith("/" + name)));
    out({ event: "upload", file: s.file, message: sent, ms: ms() });
    const shot = path.join(s.outdir, "conversation.png");
    await page.screenshot({ path: shot });
    out({ event: "screenshot", what: "conversation", path: shot });
    out({ event: "websocket", sockets: [...ws.values()] });
  } finally {
    if (pageErrors.length) out({ event: "page-errors", errors: pageErrors });
    if (refused.length) out({ event: "refused", urls: refused });
    await browser.close().catch(() => {});
    await rm(profile, { recursive: true, force: true });
  }
}

// Within the test's 150 s for a driver, and closing chromium first: a
// driver killed from outside would leave it running.
let browser = null;
const timer = setTimeout(async () => {
  process.stderr.write("converse.mjs: timed out\n");
  await Promise.race([browser?.close(), new Promise((r) => setTimeout(r, 5000))]).catch(() => {});
  process.exit(1);
}, 120000);
main(JSON.parse(process.argv[2] ?? "null") ?? {}).then(
  () => {
    clearTimeout(timer);
    process.exit(0);
  },
  (err) => {
    process.stderr.write(`${err instanceof Fatal ? err.message : err?.stack ?? err}\n`);
    process.exit(1);
  },
);
