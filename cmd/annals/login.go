package main

import (
	"flag"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"annals.im/annals/adapters/c2s"
)

// loginFlags are the serve flags of the login throttle (adapters/c2s
// throttle.go): how many failures are free, how long later ones wait,
// how long failures are remembered, and whose address is not counted.
type loginFlags struct {
	failuresAccount, failuresAddress int
	delay, delayMax, window          time.Duration
	keys                             int
	trusted                          prefixList
}

// prefixList is a repeatable flag of CIDR prefixes; a bare address is its
// own /32 or /128.
type prefixList []netip.Prefix

func (p *prefixList) String() string {
	var s []string
	for _, x := range *p {
		s = append(s, x.String())
	}
	return strings.Join(s, ",")
}

func (p *prefixList) Set(v string) error {
	if a, err := netip.ParseAddr(v); err == nil {
		*p = append(*p, netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
		return nil
	}
	x, err := netip.ParsePrefix(v)
	if err != nil {
		return fmt.Errorf("want an address or a CIDR prefix such as 10.0.0.0/8: %w", err)
	}
	*p = append(*p, x.Masked())
	return nil
}

var _ flag.Value = (*prefixList)(nil)

func (l *loginFlags) flags(fs *flag.FlagSet) {
	fs.IntVar(&l.failuresAccount, "login-failures-account", 5, "failed logins per account answered without delay; later attempts wait")
	fs.IntVar(&l.failuresAddress, "login-failures-address", 10, "failed logins per client address (IPv6: per /64) answered without delay; later attempts wait")
	fs.DurationVar(&l.delay, "login-delay", time.Second, "wait before the first throttled login attempt; it doubles with each further failure")
	fs.DurationVar(&l.delayMax, "login-delay-max", 20*time.Second, "longest wait before a throttled login attempt (20s: three guesses a minute)")
	fs.DurationVar(&l.window, "login-failure-window", 15*time.Minute, "failures of an account or address quiet this long are forgotten")
	fs.IntVar(&l.keys, "login-throttle-keys", 1<<16, "accounts and addresses whose failures are remembered at most (memory bound)")
	fs.Var(&l.trusted, "trusted-proxy", "address or CIDR of a proxy (e.g. a TLS terminator) whose clients are throttled per account only, not by the proxy's address (repeatable)")
}

func (l loginFlags) validate() error {
	switch {
	case l.failuresAccount < 1 || l.failuresAddress < 1:
		return fmt.Errorf("%w: --login-failures-account and --login-failures-address must be at least 1", errUsage)
	case l.delay <= 0 || l.delayMax < l.delay:
		return fmt.Errorf("%w: --login-delay must be positive and at most --login-delay-max", errUsage)
	case l.window <= 0:
		return fmt.Errorf("%w: --login-failure-window must be positive", errUsage)
	case l.keys < 1:
		return fmt.Errorf("%w: --login-throttle-keys must be at least 1", errUsage)
	}
	return nil
}

// apply sets the throttle's part of cfg.
func (l loginFlags) apply(cfg *c2s.Config) {
	cfg.FailuresPerAccount, cfg.FailuresPerIP = l.failuresAccount, l.failuresAddress
	cfg.FailureDelay, cfg.FailureDelayMax, cfg.FailureWindow = l.delay, l.delayMax, l.window
	cfg.ThrottleKeys = l.keys
	cfg.TrustedProxies = l.trusted
}
