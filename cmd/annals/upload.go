package main

import (
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"annals.im/annals/adapters/features/upload"
	"annals.im/annals/app/accounts"
	"annals.im/annals/domain/account"
	uploaddomain "annals.im/annals/domain/upload"
)

// HTTP File Upload (XEP-0363): the service upload.<first domain>, served
// on the HTTP listener (web.go) under upload.DefaultPath. The slot grants
// are events of the account streams; the files are kept in
// <data>/uploads.
type uploadFlags struct {
	domain  string // "" none
	url     string // the HTTP listener's public base URL; "" derived from --http
	derived bool   // url was not given: it follows the listener (settle)
	maxSize byteSize
	quota   byteSize
	maxOpen int
	expiry  time.Duration
	window  time.Duration
	minRate byteSize       // a PUT's slowest pace, bytes a second
	metrics upload.Metrics // set by serve
}

const uploadDefaultDomain = "upload.<first domain>"

func (u *uploadFlags) flags(fs *flag.FlagSet) {
	u.maxSize, u.quota, u.minRate = uploaddomain.DefaultMaxSize, uploaddomain.DefaultQuota, upload.DefaultPutMinRate
	fs.StringVar(&u.domain, "upload", uploadDefaultDomain, "domain of the HTTP File Upload service, XEP-0363, served on --http or --http-plaintext (\"\": none)")
	fs.StringVar(&u.url, "http-url", "", "the HTTP listener's public base URL, as clients reach it (e.g. https://chat.example.org:5443 or the reverse proxy's); default https://<first domain>:<--http port>")
	fs.Var(&u.maxSize, "upload-max-size", "the largest file one may upload, in bytes or with a KiB, MiB or GiB suffix")
	fs.Var(&u.quota, "upload-quota", "the bytes of files an account may keep at once (a slot counts from its grant until it expires)")
	fs.IntVar(&u.maxOpen, "upload-max-open", uploaddomain.DefaultMaxOpen, "upload slots an account may hold not yet uploaded to")
	fs.DurationVar(&u.expiry, "upload-expiry", uploaddomain.DefaultExpiry, "how long an uploaded file is served before it is deleted (0: never)")
	fs.DurationVar(&u.window, "upload-put-window", uploaddomain.DefaultPutWindow, "how long a granted slot takes its upload")
	fs.Var(&u.minRate, "upload-min-rate", "the slowest an upload may send, in bytes a second (e.g. 16KiB): a PUT has 30s plus its size at this rate")
}

// validate checks the flags and settles the defaults that depend on
// others: the service's domain and the public URL.
func (u *uploadFlags) validate(domains []string, muc string, web webFlags) error {
	if u.domain == uploadDefaultDomain {
		u.domain = "upload." + domains[0]
		if web.addr == "" && web.plainAddr == "" {
			u.domain = "" // no HTTP listener: nothing to upload to
		}
	}
	if u.domain == "" {
		return nil
	}
	if _, err := account.ParseJID("a@" + u.domain); err != nil || slices.Contains(domains, u.domain) || u.domain == muc {
		return fmt.Errorf("%w: --upload %q is not a domain of its own", errUsage, u.domain)
	}
	if web.addr == "" && web.plainAddr == "" {
		return fmt.Errorf("%w: --upload needs an HTTP listener: give --http (or --http-plaintext behind a proxy), or --upload \"\"", errUsage)
	}
	if u.url == "" || u.derived {
		addr, tls := web.addr, true
		if addr == "" {
			addr, tls = web.plainAddr, false
		}
		var err error
		if u.url, err = baseURL(addr, tls, domains[0]); err != nil {
			return fmt.Errorf("%w: --http %q: %v", errUsage, addr, err)
		}
		u.derived = true
	}
	if err := upload.CheckURL(u.url); err != nil {
		return fmt.Errorf("%w: --http-url: %v", errUsage, err)
	}
	switch {
	case u.maxSize < 1 || u.quota < u.maxSize:
		return fmt.Errorf("%w: --upload-max-size must be 1 byte or more, and --upload-quota at least as much", errUsage)
	case u.minRate < 1:
		return fmt.Errorf("%w: --upload-min-rate must be 1 byte a second or more", errUsage)
	case u.maxOpen < 1:
		return fmt.Errorf("%w: --upload-max-open must be 1 or more", errUsage)
	case u.expiry < 0 || u.window <= 0:
		return fmt.Errorf("%w: --upload-expiry must be 0 (never) or more, --upload-put-window more than 0", errUsage)
	case u.expiry > 0 && u.expiry < u.window:
		return fmt.Errorf("%w: --upload-expiry %v is shorter than --upload-put-window %v", errUsage, u.expiry, u.window)
	}
	return nil
}

// baseURL is the public URL of a listener on addr that was not given
// one: https at the first domain (its certificate's name), or for the
// plain listener, which is on loopback, its own address.
func baseURL(addr string, tls bool, domain string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", err
	}
	if tls {
		return "https://" + net.JoinHostPort(domain, port), nil
	}
	return "http://" + net.JoinHostPort(host, port), nil
}

// settle gives the service the listener's real port when its URL
// follows the listener (--http :0, as tests start it): before serving,
// so before any slot is granted. It tells the operator the URL.
func (u *uploadFlags) settle(svc *upload.Service, web *webServer, domain string) error {
	if svc == nil {
		return nil
	}
	defer func() {
		web.notes = append(web.notes, fmt.Sprintf("HTTP File Upload: %s, files at %s%s.", u.domain, u.url, upload.DefaultPath))
	}()
	if !u.derived || len(web.lns) == 0 {
		return nil
	}
	// The TLS listener first, as validate chose it.
	i := slices.IndexFunc(web.servers, func(s *http.Server) bool { return s.TLSConfig != nil })
	if i < 0 {
		i = 0
	}
	url, err := baseURL(web.lns[i].Addr().String(), web.servers[i].TLSConfig != nil, domain)
	if err != nil {
		return err
	}
	u.url = url
	return svc.SetURL(url)
}

// service builds the upload service, or nil when it is off.
func (u *uploadFlags) service(data string, domains []string, accts *accounts.Service, log *slog.Logger) (*upload.Service, error) {
	if u.domain == "" {
		return nil, nil
	}
	return upload.New(upload.Config{Domain: u.domain, Domains: domains, Slots: accts, Dir: filepath.Join(data, "uploads"), URL: u.url,
		Limits:     uploaddomain.Limits{MaxSize: int64(u.maxSize), Quota: int64(u.quota), MaxOpen: u.maxOpen, PutWindow: u.window, Expiry: u.expiry},
		PutMinRate: int64(u.minRate), Log: log, Metrics: u.metrics})
}

// uploadRoutes mounts the upload handler on an HTTP listener.
func uploadRoutes(svc *upload.Service) func(*http.ServeMux) {
	return func(mux *http.ServeMux) { mux.Handle(upload.DefaultPath, svc.Handler()) }
}

// byteSize is a flag of bytes: a count, or with a KiB, MiB or GiB suffix.
type byteSize int64

func (b *byteSize) String() string { return strconv.FormatInt(int64(*b), 10) }

func (b *byteSize) Set(s string) error {
	n, err := parseBytes(s)
	if err != nil {
		return fmt.Errorf("want bytes, or a size such as 100MiB or 1GiB")
	}
	*b = byteSize(n)
	return nil
}
