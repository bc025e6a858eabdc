package jetstream_test

import (
	"fmt"
	"os"
	"testing"

	"annals.im/annals/eventstore/jetstream/natstest"
)

// envURLs carries the shared embedded cluster's client URLs to the crash
// test's child process (storetest re-executes the test binary), which must
// reach the same log rather than start servers of its own.
const envURLs = "ANNALS_JETSTREAM_TEST_URLS"

// TestMain starts the three embedded servers most tests share, unless
// this process is the crash test's child, which is handed the parent's
// URLs.
func TestMain(m *testing.M) {
	if os.Getenv(envURLs) != "" {
		os.Exit(m.Run())
	}
	dir, err := os.MkdirTemp("", "annals-jetstream-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	c, err := natstest.StartEmbedded(dir, 3)
	if err == nil {
		os.Setenv(envURLs, c.URLs())
	}
	code := 1
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
	} else {
		code = m.Run()
	}
	if c != nil {
		c.Cleanup()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// sharedURLs are the client URLs of the shared cluster.
func sharedURLs() string { return os.Getenv(envURLs) }
