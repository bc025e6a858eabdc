// Package e2e holds the end-to-end tests: they build the real annals
// binary, start it on 127.0.0.1 and drive it with third-party XMPP clients
// (Debian's python3-slixmpp, run by /usr/bin/python3; xmpp.js under node;
// Converse.js in Debian's chromium, driven by puppeteer-core; `make test`
// installs them). Nothing here is imported by the server.
package e2e
