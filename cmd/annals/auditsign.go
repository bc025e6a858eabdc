package main

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"annals.im/annals/domain/event"
	"annals.im/annals/eventstore"
	"github.com/oklog/ulid/v2"
)

// A signed head is one line of text (docs/audit.md):
//
//	annals-head/1 log L position P streams N events M digest sha256:H signed T sig ed25519:S
//
// L is the log's identity (the ID of its first event), P N M H are what
// `audit head` prints, T the signing time (RFC 3339, UTC, seconds), and S
// the standard base64 of the Ed25519 signature over the bytes of the line
// before " sig ". The line carries no public key: an auditor is given the
// key apart from the line and never trusts one that comes with it.
const headMagic = "annals-head/1"

// signedHead is a parsed or about-to-be-signed head line.
type signedHead struct {
	Log    string // ULID of the log's first event
	Digest eventstore.Digest
	Signed time.Time
	Sig    []byte
}

// message is the byte string the signature covers.
func (h signedHead) message() string {
	return fmt.Sprintf("%s log %s position %s streams %d events %d digest %s signed %s",
		headMagic, h.Log, h.Digest.At, h.Digest.Streams, h.Digest.Events, h.Digest.Sum,
		h.Signed.UTC().Format(time.RFC3339))
}

func (h signedHead) line() string {
	return h.message() + " sig ed25519:" + base64.StdEncoding.EncodeToString(h.Sig)
}

// errHeadLine marks a head file that is not one well-formed line.
var errHeadLine = errors.New("malformed signed head")

// parseHead reads one signed line; it checks the form, not the signature.
func parseHead(s string) (signedHead, error) {
	var h signedHead
	s = strings.TrimSuffix(strings.TrimSuffix(s, "\n"), "\r")
	if strings.ContainsAny(s, "\r\n") {
		return h, fmt.Errorf("%w: more than one line", errHeadLine)
	}
	f := strings.Split(s, " ")
	keys := []string{"log", "position", "streams", "events", "digest", "signed", "sig"}
	if len(f) != 1+2*len(keys) || f[0] != headMagic {
		return h, fmt.Errorf("%w: want %q", errHeadLine, headMagic+" log L position P streams N events M digest sha256:H signed T sig ed25519:S")
	}
	vals := make(map[string]string, len(keys))
	for i, k := range keys {
		if f[1+2*i] != k {
			return h, fmt.Errorf("%w: word %d is %q, want %q", errHeadLine, 2+2*i, f[1+2*i], k)
		}
		vals[k] = f[2+2*i]
	}
	val := func(k string) string { return vals[k] }
	var err error
	h.Log = val("log")
	if _, err := ulid.ParseStrict(h.Log); err != nil {
		return h, fmt.Errorf("%w: log %q is not a ULID", errHeadLine, h.Log)
	}
	if h.Digest.At, err = event.ParsePosition(val("position")); err != nil || h.Digest.At.IsZero() {
		return h, fmt.Errorf("%w: position %q", errHeadLine, val("position"))
	}
	if h.Digest.Streams, err = strconv.Atoi(val("streams")); err != nil || h.Digest.Streams < 1 {
		return h, fmt.Errorf("%w: streams %q", errHeadLine, val("streams"))
	}
	if h.Digest.Events, err = strconv.Atoi(val("events")); err != nil || h.Digest.Events < 1 {
		return h, fmt.Errorf("%w: events %q", errHeadLine, val("events"))
	}
	h.Digest.Sum = val("digest")
	if hex, ok := strings.CutPrefix(h.Digest.Sum, "sha256:"); !ok || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return h, fmt.Errorf("%w: digest %q: want sha256: and 64 lower-case hex digits", errHeadLine, h.Digest.Sum)
	}
	if h.Signed, err = time.Parse(time.RFC3339, val("signed")); err != nil {
		return h, fmt.Errorf("%w: signed %q: want RFC 3339", errHeadLine, val("signed"))
	}
	sig, ok := strings.CutPrefix(val("sig"), "ed25519:")
	if !ok {
		return h, fmt.Errorf("%w: sig %q: want ed25519:BASE64", errHeadLine, val("sig"))
	}
	if h.Sig, err = base64.StdEncoding.Strict().DecodeString(sig); err != nil || len(h.Sig) != ed25519.SignatureSize {
		return h, fmt.Errorf("%w: sig: want %d bytes in standard base64", errHeadLine, ed25519.SignatureSize)
	}
	// The signature covers the text as it is re-printed: a line that
	// parses but is spelled otherwise (a position "07") must not verify
	// under a message it does not show.
	if h.line() != s {
		return h, fmt.Errorf("%w: not in canonical form (re-printed it reads %q)", errHeadLine, h.line())
	}
	return h, nil
}

// logIdentity is the ID of the log's first event: no two logs share it,
// and a copy or a restore of a log keeps it.
func logIdentity(ctx context.Context, s eventstore.Store) (string, error) {
	first, err := s.ReadAll(ctx, event.Position{}, 1)
	if err != nil {
		return "", err
	}
	if len(first) == 0 {
		return "", errors.New("the log is empty: there is no head to sign")
	}
	return first[0].ID.String(), nil
}

// readPrivateKey reads a PEM PKCS#8 Ed25519 private key that only its
// owner can read.
func readPrivateKey(path string) (ed25519.PrivateKey, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%w: --sign: %v", errUsage, err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%w: --sign %s: the key is readable by others (mode %04o): chmod 600 it", errUsage, path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: --sign: %v", errUsage, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%w: --sign %s: want a PEM \"PRIVATE KEY\" block (PKCS#8), as `annals audit keygen` writes", errUsage, path)
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: --sign %s: %v", errUsage, path, err)
	}
	priv, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%w: --sign %s: a %T, want an Ed25519 key", errUsage, path, k)
	}
	return priv, nil
}

// readPublicKey reads a PEM PKIX Ed25519 public key.
func readPublicKey(path string) (ed25519.PublicKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: --pub: %v", errUsage, err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: --pub %s: want a PEM \"PUBLIC KEY\" block, as `annals audit keygen` prints", errUsage, path)
	}
	k, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: --pub %s: %v", errUsage, path, err)
	}
	pub, ok := k.(ed25519.PublicKey)
	if !ok {
		return nil, fmt.Errorf("%w: --pub %s: a %T, want an Ed25519 key", errUsage, path, k)
	}
	return pub, nil
}

func auditKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("audit keygen", stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("%w: audit keygen takes one KEYFILE", errUsage)
	}
	path := fs.Arg(0)
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	// O_EXCL: a new key never replaces one whose heads auditors hold.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("%w: audit keygen: %v", errUsage, err)
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return pem.Encode(stdout, &pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
}

// signHead prints the signed line for digest d of the log named id.
func signHead(w io.Writer, keyPath, id string, d eventstore.Digest, now time.Time) error {
	priv, err := readPrivateKey(keyPath)
	if err != nil {
		return err
	}
	h := signedHead{Log: id, Digest: d, Signed: now.UTC().Truncate(time.Second)}
	h.Sig = ed25519.Sign(priv, []byte(h.message()))
	_, err = fmt.Fprintln(w, h.line())
	return err
}

// checkHead checks a signed head file against the log as it is now. A
// malformed file or key is a usage error; a bad signature or a log that
// differs is a failure that names what differs.
func checkHead(ctx context.Context, s eventstore.Store, headPath, pubPath string) (signedHead, error) {
	pub, err := readPublicKey(pubPath)
	if err != nil {
		return signedHead{}, err
	}
	b, err := os.ReadFile(headPath)
	if err != nil {
		return signedHead{}, fmt.Errorf("%w: --head: %v", errUsage, err)
	}
	h, err := parseHead(string(b))
	if err != nil {
		return h, fmt.Errorf("%w: --head %s: %v", errUsage, headPath, err)
	}
	if !ed25519.Verify(pub, []byte(h.message()), h.Sig) {
		return h, fmt.Errorf("signed head %s: the signature does not verify with the key in %s (another key signed it, or the line was altered)", headPath, pubPath)
	}
	id, err := logIdentity(ctx, s)
	if err != nil {
		return h, fmt.Errorf("signed head %s: %w", headPath, err)
	}
	if id != h.Log {
		return h, fmt.Errorf("signed head %s: log identity differs: the head is of log %s, this log's first event is %s", headPath, h.Log, id)
	}
	d, err := eventstore.HeadDigest(ctx, s, h.Digest.At)
	if err != nil {
		return h, fmt.Errorf("signed head %s: at position %s: %w (an event was removed or renumbered)", headPath, h.Digest.At, err)
	}
	var diff []string
	if d.Streams != h.Digest.Streams {
		diff = append(diff, fmt.Sprintf("streams %d, signed %d", d.Streams, h.Digest.Streams))
	}
	if d.Events != h.Digest.Events {
		diff = append(diff, fmt.Sprintf("events %d, signed %d", d.Events, h.Digest.Events))
	}
	if d.Sum != h.Digest.Sum {
		diff = append(diff, fmt.Sprintf("digest %s, signed %s", d.Sum, h.Digest.Sum))
	}
	if len(diff) > 0 {
		return h, fmt.Errorf("signed head %s: the log at or before position %s was altered: it gives %s", headPath, h.Digest.At, strings.Join(diff, "; "))
	}
	return h, nil
}
