package connlimit

import (
	"net"
	"testing"
)

func TestKey(t *testing.T) {
	for _, c := range []struct{ addr, want string }{
		{"192.0.2.7:5222", "192.0.2.7"},
		{"[::ffff:192.0.2.7]:5222", "192.0.2.7"},
		{"[2001:db8:1:2:3:4:5:6]:5222", "2001:db8:1:2::/64"},
		{"[2001:db8:1:2:ffff::1]:1", "2001:db8:1:2::/64"},
		{"[fe80::1%eth0]:1", "fe80::/64"},
		{"[::1]:1", "::/64"},
	} {
		addr, err := net.ResolveTCPAddr("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		if got := Key(addr); got != c.want {
			t.Errorf("Key(%s) = %q, want %q", c.addr, got, c.want)
		}
	}
}

func TestConnLimits(t *testing.T) {
	l := New(3, 2)
	var releases []func()
	admit := func(key, wantCond string) {
		t.Helper()
		release, cond, _ := l.Admit(key)
		switch {
		case wantCond == "" && release == nil:
			t.Fatalf("%s refused: %s", key, cond)
		case wantCond != "" && (release != nil || cond != wantCond):
			t.Fatalf("%s: got %q, want %s", key, cond, wantCond)
		case release != nil:
			releases = append(releases, release)
		}
	}
	admit("a", "")
	admit("a", "")
	admit("a", "policy-violation")
	admit("b", "")
	admit("c", "resource-constraint")
	releases[0]()
	releases[0]() // twice: counted once
	admit("c", "")
	admit("a", "resource-constraint")
	for _, r := range releases {
		r()
	}
	if total, a := l.Open("a"); total != 0 || a != 0 || len(l.byAddr) != 0 {
		t.Fatalf("after every release: %d open, %d from a, %d keys", total, a, len(l.byAddr))
	}
}
