package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"annals.im/annals/adapters/features/extdisco"
)

// External service discovery (XEP-0215): the STUN and TURN servers the
// operator runs for calls, told to the accounts here. Configuration, not
// state: nothing of it is events.
type extdiscoFlags struct {
	services   stringList
	secret     string
	secretFile string
	ttl        time.Duration
}

// maxSecretFile bounds what --turn-secret-file may hold: a shared secret
// is some dozens of bytes; a larger file is the wrong file.
const maxSecretFile = 1024

func (e *extdiscoFlags) flags(fs *flag.FlagSet) {
	fs.Var(&e.services, "external-service", "a STUN or TURN server told to clients for calls, XEP-0215: type:host:port?transport=udp|tcp, type stun, stuns, turn or turns, e.g. turn:turn.example.org:3478?transport=udp (repeatable; at most 32)")
	fs.StringVar(&e.secretFile, "turn-secret-file", "", "file holding the TURN server's shared secret (coturn static-auth-secret): clients get time-limited credentials for the turn: and turns: services")
	fs.StringVar(&e.secret, "turn-secret", "", "the TURN shared secret itself; other users see it in ps: prefer --turn-secret-file")
	fs.DurationVar(&e.ttl, "turn-ttl", extdisco.DefaultTTL, "how long TURN credentials last")
}

// service reads the flags into the feature (it advertises nothing without
// services). The secret file is read here, at start.
func (e *extdiscoFlags) service(domains []string) (*extdisco.Service, error) {
	cfg := extdisco.Config{Domains: domains, TTL: e.ttl}
	for _, s := range e.services {
		svc, err := extdisco.ParseService(s)
		if err != nil {
			return nil, fmt.Errorf("%w: --external-service: %v", errUsage, err)
		}
		cfg.Services = append(cfg.Services, svc)
	}
	switch {
	case e.secret != "" && e.secretFile != "":
		return nil, fmt.Errorf("%w: give --turn-secret or --turn-secret-file, not both", errUsage)
	case e.secret != "":
		cfg.Secret = []byte(e.secret)
	case e.secretFile != "":
		f, err := os.Open(e.secretFile)
		if err != nil {
			return nil, fmt.Errorf("--turn-secret-file: %w", err)
		}
		b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("--turn-secret-file: %w", err)
		}
		if len(b) > maxSecretFile {
			return nil, fmt.Errorf("%w: --turn-secret-file %s holds more than %d bytes: is it the secret?", errUsage, e.secretFile, maxSecretFile)
		}
		// A file written with echo ends in a newline that is no part
		// of the secret coturn reads from its configuration.
		cfg.Secret = []byte(strings.TrimRight(string(b), "\r\n"))
	}
	if e.ttl <= 0 {
		return nil, fmt.Errorf("%w: --turn-ttl must be more than 0", errUsage)
	}
	svc, err := extdisco.New(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: --external-service, --turn-secret, --turn-ttl: %v", errUsage, err)
	}
	return svc, nil
}
