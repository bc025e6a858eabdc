# Annals. Every build, test and benchmark uses the same cgo setting and tags.
export CGO_ENABLED := 1
TAGS     ?=
GO       ?= go
GOFLAGS_ := -tags '$(TAGS)'
DATA     ?= ./var
METRICS  ?= 127.0.0.1:9464
BIN      := bin/annals

.PHONY: all build install run test unit race vet fmtcheck depcheck tools bench bench-tools fuzz clean

all: build

build:
	$(GO) build $(GOFLAGS_) -o $(BIN) ./cmd/annals

# Installs the binary (built as above), the systemd unit, its user (for
# systemd-sysusers) and the example configuration, which becomes
# /etc/annals/annals.toml unless there is one. DESTDIR stages it all for a
# package. Then, as root: systemd-sysusers; edit /etc/annals/annals.toml;
# systemctl daemon-reload; systemctl enable --now annals (README,
# "Installing as a service").
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
UNITDIR    ?= $(PREFIX)/lib/systemd/system
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
SYSCONFDIR ?= /etc
install: build
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(SYSCONFDIR)/annals
	install -m 0755 $(BIN) $(DESTDIR)$(BINDIR)/annals
	sed 's|@BINDIR@|$(BINDIR)|g' contrib/annals.service > $(BIN).service
	install -m 0644 $(BIN).service $(DESTDIR)$(UNITDIR)/annals.service
	rm -f $(BIN).service
	install -m 0644 contrib/annals.sysusers $(DESTDIR)$(SYSUSERSDIR)/annals.conf
	install -m 0644 annals.example.toml $(DESTDIR)$(SYSCONFDIR)/annals/annals.example.toml
	[ -e $(DESTDIR)$(SYSCONFDIR)/annals/annals.toml ] || \
		install -m 0644 annals.example.toml $(DESTDIR)$(SYSCONFDIR)/annals/annals.toml

# Builds Annals and serves the embedded SQLite store in $(DATA), creating
# and printing the demo account demo@localhost, with the metrics on
# $(METRICS) (loopback; serve itself has them off unless asked, README
# "Metrics"); METRICS= turns them off.
run: build
	./$(BIN) serve --data $(DATA) --demo --http-plaintext 127.0.0.1:5280 $(if $(METRICS),--metrics $(METRICS))

# Everything CI runs. Installs the Debian tools the tests drive.
test: tools fmtcheck vet depcheck race

# Tests drive the sqlite3 CLI (to tamper with a log) and three third-party
# XMPP clients, slixmpp (Debian), xmpp.js (npm, pinned in
# e2e/clients/xmppjs/package-lock.json) and Converse.js in Debian's
# chromium, driven by puppeteer-core (npm, both pinned in
# e2e/clients/browser/package-lock.json; no browser is downloaded); the
# federation tests run Debian's
# Prosody (resolving through lua-unbound) and ejabberd as peers, in a
# network namespace (iproute2); coturn checks the TURN credentials of
# XEP-0215; the JetStream store runs its tests also on three processes of
# Debian's nats-server (2.9). Install them when missing.
tools:
	@missing=""; \
	command -v sqlite3 >/dev/null || missing="$$missing sqlite3"; \
	/usr/bin/python3 -c 'import slixmpp' 2>/dev/null || missing="$$missing python3-slixmpp"; \
	command -v node >/dev/null || missing="$$missing nodejs"; \
	command -v npm >/dev/null || missing="$$missing npm"; \
	command -v ip >/dev/null || missing="$$missing iproute2"; \
	command -v prosody >/dev/null || missing="$$missing prosody"; \
	dpkg -s lua-unbound >/dev/null 2>&1 || missing="$$missing lua-unbound"; \
	command -v ejabberdctl >/dev/null || missing="$$missing ejabberd"; \
	command -v turnserver >/dev/null || missing="$$missing coturn"; \
	[ -x /usr/bin/chromium ] || missing="$$missing chromium"; \
	[ -x /usr/sbin/nats-server ] || missing="$$missing nats-server"; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages for the tests:$$missing"; \
		(apt-get update -qq && apt-get install -y -qq $$missing) >/dev/null || exit 1; \
	fi
	@[ -d e2e/clients/xmppjs/node_modules/@xmpp/client ] || \
		(echo "installing xmpp.js for the tests (npm ci)"; cd e2e/clients/xmppjs && npm ci --no-audit --no-fund --loglevel=error)
	@[ -d e2e/clients/browser/node_modules/converse.js/dist ] && [ -d e2e/clients/browser/node_modules/puppeteer-core ] || \
		(echo "installing Converse.js and puppeteer-core for the browser test (npm ci)"; cd e2e/clients/browser && npm ci --no-audit --no-fund --loglevel=error)

fmtcheck:
	@out=$$(gofmt -l $$(git ls-files --cached --others --exclude-standard '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet $(GOFLAGS_) ./...

# go test shows a passing package's skips only with -v: say it first, so
# that go test's own lines still close the output.
race:
	@[ -n "$$ANNALS_KURRENTDB_URL" ] || echo "SKIPPING: the KurrentDB conformance suite (eventstore/kurrentdb); set ANNALS_KURRENTDB_URL to run it (README, \"Adding a store\")"
	@command -v systemd-analyze >/dev/null || echo "SKIPPING: systemd-analyze verify of contrib/annals.service (cmd/annals TestSystemdUnit); install systemd to run it"
	$(GO) test $(GOFLAGS_) -race -count=1 -timeout 15m ./...

unit:
	$(GO) test $(GOFLAGS_) -count=1 ./...

# The dependency rules. domain/ imports only the standard library, ulid
# and mellium.im/xmpp/jid. eventstore, projections, adapters and app never
# reach cmd/. A feature (adapters/features/X) imports neither the session
# core (adapters/c2s) nor another feature, and nothing outside features
# imports one. The application services (app/) and the client adapter
# (adapters/c2s) know each other only through the small interfaces c2s
# declares: app/ imports no adapters/c2s, and nothing but cmd/ imports
# app/ (domain/ cannot, by its own rule). Only cmd/ wires them (tests
# included). forbid DIR PKG reports every package under DIR, its tests
# included, that depends on MODULE/PKG or a package under it, directly or
# not; a go list that fails (an import cycle is how most such imports
# show) fails the check too.
MODULE := $(shell $(GO) list -m)
depcheck:
	@forbid() { [ -d $$1 ] || return 0; \
		deps=$$($(GO) list $(GOFLAGS_) -test -f '{{.ImportPath}}|{{join .Deps " "}}' ./$$1/...) \
			|| { echo "depcheck: go list ./$$1/... failed"; return; }; \
		printf '%s\n' "$$deps" | awk -F'|' -v dir=$$1 -v m='$(MODULE)' -v pkg=$$2 'BEGIN { re = "^" m "/" pkg "(/|$$)" } \
			{ n = split($$2, d, " "); for (i = 1; i <= n; i++) if (d[i] ~ re) print dir " may not import: " $$1 " -> " d[i] }' \
		| sort -u; }; \
	imports() { $(GO) list $(GOFLAGS_) -f '{{$$p := .ImportPath}}{{range .Imports}}{{$$p}} {{.}}{{"\n"}}{{end}}{{range .TestImports}}{{$$p}} {{.}}{{"\n"}}{{end}}{{range .XTestImports}}{{$$p}} {{.}}{{"\n"}}{{end}}' ./$$1/... \
		|| echo "depcheck: go list ./$$1/... failed"; }; \
	bad=$$( { \
		imports domain | awk -v m='$(MODULE)' 'NF==2 { split($$2, a, "/"); \
			if (a[1] !~ /\./) next; \
			if (index($$2, m "/domain/") == 1) next; \
			if ($$2 == "github.com/oklog/ulid/v2" || $$2 == "mellium.im/xmpp/jid") next; \
			print "domain may not import: " $$1 " -> " $$2 } /^depcheck: /'; \
		$(GO) list $(GOFLAGS_) -f '{{$$p := .ImportPath}}{{range .Imports}}{{$$p}} {{.}}{{"\n"}}{{end}}{{range .TestImports}}{{$$p}} {{.}} test{{"\n"}}{{end}}{{range .XTestImports}}{{$$p}} {{.}} test{{"\n"}}{{end}}' ./adapters/... \
		| awk -v f='$(MODULE)/adapters/features/' -v core='$(MODULE)/adapters/c2s' 'NF>=2 { \
			own = ""; if (index($$1, f) == 1) { split(substr($$1, length(f) + 1), a, "/"); own = a[1] } \
			dep = ""; if (index($$2, f) == 1) { split(substr($$2, length(f) + 1), b, "/"); dep = b[1] } \
			if (own == "" && dep != "" && $$3 != "test") print "the core may not import a feature: " $$1 " -> " $$2; \
			if (own != "" && dep != "" && dep != own) print "a feature may not import another: " $$1 " -> " $$2; \
			if (own != "" && index($$2, core) == 1) print "a feature may not import the session core: " $$1 " -> " $$2 } /^depcheck: /'; \
		for dir in eventstore projections adapters app; do forbid $$dir cmd; done; \
		forbid app adapters/c2s; \
		for dir in eventstore projections adapters; do forbid $$dir app; done; \
	} ); \
	if [ -n "$$bad" ]; then echo "$$bad"; exit 1; fi; echo "depcheck: ok"

# Append and replay throughput, each beside the raw SQLite baseline of the
# same run; append throughput on JetStream (three embedded servers, R3)
# beside raw JetStream publishes and the SQLite store (~20 s); what sealing
# content costs the SQLite store's appends and a follower's reads, beside
# the store without a codec and with sealing off (~20 s); then XMPP logins/s and messages/s, Annals beside Prosody and
# ejabberd started by the benchmark on loopback (one run: ~2 minutes);
# then the bytes over a server link per groupchat message, a DMUC3 mirror
# beside plain federated MUC and a Prosody master (~1 minute); then 1:1
# messages/s across two federated Annals beside two federated Prosody, in
# a network namespace (~2 minutes); then 1:1 messages/s over WebSocket
# (wss://) beside TCP, Annals beside Prosody's mod_websocket and
# ejabberd's (~3 minutes); then 1:1 msgs/s and MUC fan-out on two nodes
# serving one log (three embedded JetStream servers, R3) beside one SQLite
# node, and where the cluster's time goes (~2 minutes). The 1:1 chat and
# MUC figures have Annals twice, as served by default (content sealed) and
# with --seal-content=false, with the ratio of the two (~2 minutes more).
bench: tools bench-tools
	$(GO) test $(GOFLAGS_) -run '^$$' -bench . -benchtime 1x -count 3 ./eventstore/sqlite/
	$(GO) test $(GOFLAGS_) -run '^$$' -bench Append -benchtime 1x -count 1 ./eventstore/jetstream/
	$(GO) test $(GOFLAGS_) -run '^$$' -bench '^BenchmarkSealedLog$$' -benchtime 1x -count 1 ./adapters/sealing/
	$(GO) test $(GOFLAGS_) -run '^$$' -bench XMPP -benchtime 1x -count 1 -timeout 30m ./e2e/
	$(GO) test $(GOFLAGS_) -run '^$$' -bench Chat -benchtime 1x -count 1 -timeout 60m ./e2e/
	$(GO) test $(GOFLAGS_) -run '^$$' -bench '^BenchmarkMUC' -benchtime 1x -count 1 -timeout 30m ./e2e/
	$(GO) test $(GOFLAGS_) -run '^$$' -bench DMUC -benchtime 1x -count 1 -timeout 30m ./e2e/
	$(GO) test $(GOFLAGS_) -run '^$$' -bench Federation -benchtime 1x -count 1 -timeout 20m ./e2e/
	$(GO) test $(GOFLAGS_) -run '^$$' -bench '^BenchmarkWebSocket$$' -benchtime 1x -count 1 -timeout 30m ./e2e/
	$(GO) test $(GOFLAGS_) -run '^$$' -bench '^BenchmarkCluster$$' -benchtime 1x -count 1 -timeout 20m ./e2e/

# The peers make bench compares against, from Debian; never part of Annals.
BENCH_PEERS := prosody lua-dbi-sqlite3 ejabberd erlang-p1-sqlite3
bench-tools:
	@missing=""; for p in $(BENCH_PEERS); do \
		dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages to compare against:$$missing"; \
		(apt-get update -qq && apt-get install -y -qq $$missing) >/dev/null || exit 1; \
	fi

# A short fuzzing pass over each parser; seeds live in testdata/.
FUZZTIME ?= 20s
fuzz:
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzEnvelopeJSON$$' -fuzztime $(FUZZTIME) ./domain/event/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzCanonical$$' -fuzztime $(FUZZTIME) ./domain/event/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzExchange$$' -fuzztime $(FUZZTIME) ./adapters/sasl/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzCanonical$$' -fuzztime $(FUZZTIME) ./domain/wellformed/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzRestamp$$' -fuzztime $(FUZZTIME) ./adapters/stanza/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzScanMessage$$' -fuzztime $(FUZZTIME) ./adapters/stanza/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzScanRemoteMessage$$' -fuzztime $(FUZZTIME) ./adapters/stanza/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzEscapeLocal$$' -fuzztime $(FUZZTIME) ./adapters/stanza/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzServerNamespace$$' -fuzztime $(FUZZTIME) ./adapters/s2s/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzRead$$' -fuzztime $(FUZZTIME) ./adapters/features/mirror/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzMAMQuery$$' -fuzztime $(FUZZTIME) ./adapters/features/mam/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzSplitter$$' -fuzztime $(FUZZTIME) ./adapters/websocket/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzMember$$' -fuzztime $(FUZZTIME) ./adapters/sealing/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzOpen$$' -fuzztime $(FUZZTIME) ./adapters/sealing/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzFromClient$$' -fuzztime $(FUZZTIME) ./adapters/websocket/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzSanitizeFilename$$' -fuzztime $(FUZZTIME) ./domain/upload/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzContentType$$' -fuzztime $(FUZZTIME) ./domain/upload/
	$(GO) test $(GOFLAGS_) -run '^$$' -fuzz '^FuzzSlotRequest$$' -fuzztime $(FUZZTIME) ./adapters/features/upload/

clean:
	rm -rf bin
